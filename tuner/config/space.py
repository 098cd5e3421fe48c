"""The search-space YAML: parsed and validated completely before any Ray or MLflow work starts.

A file names the model family, the searched and fixed values of the model, training and augmentation
configs, the searcher, ASHA, the finalize run, the data and the resources. A value in `model:`,
`train:` or `augment:` (whose parts nest: augment.mraugment.schedule.kind) is either fixed (a plain
YAML value) or searched, written as one of

    {choice: [a, b, ...]}          {int: [low, high], step: 1, log: false}
    {uniform: [low, high]}         {loguniform: [low, high]}

with an optional `when: {other_key: [values...]}` that makes it exist only where an earlier key took one
of those values (e.g. an attention kernel only when attention is not "none").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from data import validation as check
from tuner.config.domain import DOMAIN_KINDS, Param, parse_param
from tuner.config.trial import ConfigError, TrialConfig
from tuner.config.yaml_file import read_yaml
from tuner.contract import SpecError

TOP_LEVEL_KEYS = ("name", "description", "model", "train", "augment", "search", "asha", "finalize", "data", "demo",
                  "resources")


@dataclass(frozen=True)
class SearcherSettings:
    num_samples: int = 16
    seed: int = 0
    # TPE samples at random until this many trials have finished (Optuna's default is 10).
    startup_trials: int = 10
    points_to_evaluate: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class AshaSettings:
    max_epochs: int = 6
    grace_period: int = 1
    reduction_factor: int = 3


@dataclass(frozen=True)
class ResourceSettings:
    cpus_per_trial: int | None = None
    # How many trials share one GPU; "auto": as many as the card's memory holds at vram_budget_gb each.
    trials_per_gpu: int | str = "auto"
    vram_budget_gb: float = 8.0
    # A configuration that fits the budget only with activation checkpointing trains with it.
    auto_checkpointing: bool = True


@dataclass(frozen=True)
class SearchSpace:
    """A validated search-space file. `fixed` and `params` use flat keys ("model.chans", "train.lr")."""

    name: str
    source: Path
    fixed: Mapping[str, Any]
    params: tuple[Param, ...]
    search: SearcherSettings = SearcherSettings()
    asha: AshaSettings = AshaSettings()
    finalize_epochs: int = 50
    data_root: Path | None = None
    mask_bank: Path | None = None
    demo: Mapping[str, Any] = field(default_factory=dict)
    resources: ResourceSettings = ResourceSettings()
    description: str = ""

    @property
    def model_name(self) -> str:
        return str(self.fixed["model.name"])

    def sample(self, trial: Any) -> dict[str, Any]:
        """Define-by-run space for OptunaSearch: draws the active params, returns the whole flat config."""
        config = dict(self.fixed)
        for param in self.params:
            if param.active(config):
                config[param.key] = param.suggest(trial)
        return config

    def trial_config(self, flat: Mapping[str, Any]) -> TrialConfig:
        return TrialConfig.from_flat({**self.fixed, **flat})

    def largest_value(self, key: str, default: Any) -> Any:
        """The largest value `key` can take in this space: its fixed value, or its domain's top corner."""
        param = next((p for p in self.params if p.key == key), None)
        if param is None:
            return self.fixed.get(key, default)
        return max(v for v in param.corners() if v is not None)

    def config_key(self, flat: Mapping[str, Any]) -> str:
        """Equal for samples that train identically (inactive conditional keys take their defaults)."""
        return repr(sorted(self.trial_config(flat).flat().items()))

    def count_configurations(self, limit: int) -> int:
        """How many distinct configurations the space holds, counting no further than `limit`."""
        if any(p.values() is None for p in self.params):
            return limit
        seen: set[str] = set()

        def walk(index: int, config: dict[str, Any]) -> None:
            if len(seen) >= limit:
                return
            if index == len(self.params):
                seen.add(self.config_key(config))
                return
            param = self.params[index]
            if not param.active(config):
                walk(index + 1, config)
                return
            for value in param.values():
                walk(index + 1, {**config, param.key: value})

        walk(0, dict(self.fixed))
        return min(len(seen), limit)

    def replace(self, **changes: Any) -> "SearchSpace":
        """A copy with CLI overrides applied (`num_samples`, `seed`, `max_epochs`, `data_root`)."""
        try:
            return self._replace(**changes)
        except ValueError as exc:
            raise SpecError(str(exc)) from None

    def _replace(self, **changes: Any) -> "SearchSpace":
        search, asha = self.search, self.asha
        if changes.get("num_samples") is not None:
            search = dataclasses.replace(search, num_samples=check.integer("--num-samples", changes["num_samples"], 1))
        if changes.get("seed") is not None:
            search = dataclasses.replace(search, seed=int(changes["seed"]))
        if changes.get("max_epochs") is not None:
            max_epochs = check.integer("--max-epochs", changes["max_epochs"], 1)
            asha = dataclasses.replace(asha, max_epochs=max_epochs, grace_period=min(asha.grace_period, max_epochs))
        data_root = Path(changes["data_root"]).resolve() if changes.get("data_root") else self.data_root
        return dataclasses.replace(self, search=search, asha=asha, data_root=data_root)


def load_space(path: str | Path) -> SearchSpace:
    """Read and fully validate a search-space YAML file; raises SpecError naming the file and key."""
    path = Path(path)
    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such search-space file") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    try:
        return _parse(raw, path)
    except ValueError as exc:  # the validation kit's, and our own SpecError and ConfigError
        raise SpecError(f"{path}: {exc}") from None


def _parse(raw: Any, path: Path) -> SearchSpace:
    raw = check.mapping("the file", raw)
    check.no_unknown(raw, TOP_LEVEL_KEYS, "")
    model = check.mapping("model", raw.get("model"))
    if "name" not in model or not isinstance(model["name"], str):
        raise SpecError("model.name: expected the model family name (e.g. varnet, fivarnet)")
    fixed: dict[str, Any] = {}
    params: list[Param] = []
    for section in ("model", "train", "augment"):
        for key, value in _section_entries(section, check.mapping(section, raw.get(section, {}))):
            if isinstance(value, Mapping):
                params.append(parse_param(key, value, fixed, params))
            else:
                fixed[key] = value
    params_t = tuple(params)
    _validate_values(fixed, params_t)

    search = _settings(SearcherSettings, raw.get("search", {}), "search")
    points = tuple(_parse_point(p, i, fixed, params_t) for i, p in enumerate(search.points_to_evaluate))
    search = dataclasses.replace(search, points_to_evaluate=points)
    check.integer("search.num_samples", search.num_samples, 1)
    check.integer("search.startup_trials", search.startup_trials, 1)
    asha = _settings(AshaSettings, raw.get("asha", {}), "asha")
    check.integer("asha.max_epochs", asha.max_epochs, 1)
    check.integer("asha.grace_period", asha.grace_period, 1)
    if asha.grace_period > asha.max_epochs:
        raise SpecError(f"asha.grace_period: expected <= asha.max_epochs ({asha.max_epochs}), got {asha.grace_period}")
    if not isinstance(asha.reduction_factor, int) or asha.reduction_factor < 2:
        raise SpecError(f"asha.reduction_factor: expected an integer >= 2, got {asha.reduction_factor!r}")
    finalize = check.mapping("finalize", raw.get("finalize", {}))
    check.no_unknown(finalize, ("epochs",), "finalize.")
    resources = _settings(ResourceSettings, raw.get("resources", {}), "resources")
    if resources.cpus_per_trial is not None:
        check.integer("resources.cpus_per_trial", resources.cpus_per_trial, 1)
    per_gpu = resources.trials_per_gpu
    check.require(per_gpu == "auto" or (type(per_gpu) is int and per_gpu >= 1), "resources.trials_per_gpu",
                  "auto or an integer >= 1", per_gpu)
    if resources.vram_budget_gb <= 0:
        raise SpecError(f"resources.vram_budget_gb: expected > 0, got {resources.vram_budget_gb!r}")
    data = check.mapping("data", raw.get("data", {}))
    check.no_unknown(data, ("root", "mask_bank"), "data.")
    # Paths in the file are relative to the file.
    data_root, mask_bank = (None if data.get(key) is None else (path.parent / Path(str(data[key])).expanduser())
                            .resolve() for key in ("root", "mask_bank"))
    name = check.plain_name("name", raw.get("name", path.stem))
    return SearchSpace(
        name=name, source=path.resolve(), fixed=fixed, params=params_t, search=search, asha=asha,
        finalize_epochs=check.integer("finalize.epochs", finalize.get("epochs", 50), 1), data_root=data_root,
        mask_bank=mask_bank,
        demo=check.mapping("demo", raw.get("demo", {})), resources=resources,
        description=str(raw.get("description", "")),
    )


def _section_entries(prefix: str, values: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(flat key, value) of a section; `augment` nests its parts (augment.mraugment.schedule.kind).

    A mapping naming a domain kind (choice, int, ...) is a searched value, any other mapping inside
    `augment` a nested part; `model` and `train` are flat.
    """
    out: list[tuple[str, Any]] = []
    for name, value in values.items():
        key = f"{prefix}.{name}"
        nested = prefix.startswith("augment") and isinstance(value, Mapping) and not set(value) & set(DOMAIN_KINDS)
        out.extend(_section_entries(key, value) if nested else [(key, value)])
    return out


def _validate_values(fixed: Mapping[str, Any], params: tuple[Param, ...]) -> None:
    """Every fixed value and every corner of every domain must give a valid config by itself."""
    base = {**fixed, **{p.key: p.corners()[0] for p in params}}
    TrialConfig.from_flat(base)
    for param in params:
        for value in param.corners():
            try:
                TrialConfig.from_flat({**base, param.key: value})
            except ConfigError as exc:
                raise SpecError(f"{param.key}: the value {value!r} is not valid ({exc})") from None
    for end in (0, -1):
        TrialConfig.from_flat({**fixed, **{p.key: p.corners()[end] for p in params}})


def _parse_point(raw: Any, index: int, fixed: Mapping[str, Any], params: tuple[Param, ...]) -> dict[str, Any]:
    where = f"search.points_to_evaluate[{index}]"
    by_key = {p.key: p for p in params}
    point: dict[str, Any] = {}
    for section, values in check.mapping(where, raw).items():
        for key, value in _section_entries(section, check.mapping(f"{where}.{section}", values)):
            if key not in by_key:
                raise SpecError(f"{where}.{key}: not a searched key (searched: {sorted(by_key)})")
            if not by_key[key].contains(value):
                raise SpecError(f"{where}.{key}: {value!r} lies outside its domain")
            point[key] = value
    return point


def _settings(cls: type, raw: Any, section: str) -> Any:
    raw = check.mapping(section, raw)
    names = tuple(f.name for f in dataclasses.fields(cls))
    check.no_unknown(raw, names, f"{section}.")
    for name, value in raw.items():
        default = getattr(cls(), name)
        if isinstance(default, tuple):
            if not isinstance(value, list):
                raise SpecError(f"{section}.{name}: expected a list, got {value!r}")
            raw = {**raw, name: tuple(value)}
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise SpecError(f"{section}.{name}: expected true or false, got {value!r}")
        elif isinstance(default, (int, float)) and not (
                check.is_number(value) and (isinstance(default, float) or isinstance(value, int))):
            raise SpecError(f"{section}.{name}: expected a number like {default!r}, got {value!r}")
    return cls(**raw)
