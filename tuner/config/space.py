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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from data.errors import UserError
from tuner.config.trial import ConfigError, TrialConfig

DOMAIN_KINDS = ("choice", "int", "uniform", "loguniform")
TOP_LEVEL_KEYS = ("name", "description", "model", "train", "augment", "search", "asha", "finalize", "data", "demo",
                  "resources")


class SpecError(UserError):
    """The search-space file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Param:
    """One searched value: its flat key ("model.chans"), its domain and the condition for it to exist."""

    key: str
    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    log: bool = False
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def suggest(self, trial: Any) -> Any:
        """Draw this value from an Optuna trial (define-by-run)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=self.step, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "loguniform")

    def values(self) -> tuple[Any, ...] | None:
        """Every value of a finite domain (choices, int ranges); None for a float range."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "int":
            return tuple(range(int(self.low), int(self.high) + 1, self.step))
        return None

    def corners(self) -> tuple[Any, ...]:
        """The values that bound the domain: every choice, or both ends of a range."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "int":
            return (int(self.low), int(self.low + ((self.high - self.low) // self.step) * self.step))
        return (self.low, self.high)

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int":
            return float(value).is_integer() and self.low <= value <= self.high and (value - self.low) % self.step == 0
        return self.low <= value <= self.high

    def active(self, config: Mapping[str, Any]) -> bool:
        return all(config.get(key) in allowed for key, allowed in self.when.items())


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
    vram_budget_gb: float = 8.0
    # A configuration that fits the budget only with activation checkpointing trains with it.
    auto_checkpointing: bool = True


@dataclass(frozen=True)
class SearchSpec:
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

    def replace(self, **changes: Any) -> "SearchSpec":
        """A copy with CLI overrides applied (`num_samples`, `seed`, `max_epochs`, `data_root`)."""
        search, asha = self.search, self.asha
        if changes.get("num_samples") is not None:
            search = dataclasses.replace(search, num_samples=_positive("--num-samples", changes["num_samples"]))
        if changes.get("seed") is not None:
            search = dataclasses.replace(search, seed=int(changes["seed"]))
        if changes.get("max_epochs") is not None:
            max_epochs = _positive("--max-epochs", changes["max_epochs"])
            asha = dataclasses.replace(asha, max_epochs=max_epochs, grace_period=min(asha.grace_period, max_epochs))
        data_root = Path(changes["data_root"]).resolve() if changes.get("data_root") else self.data_root
        return dataclasses.replace(self, search=search, asha=asha, data_root=data_root)


def load_spec(path: str | Path) -> SearchSpec:
    """Read and fully validate a search-space YAML file; raises SpecError naming the file and key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such search-space file") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    try:
        return _parse(raw, path)
    except (SpecError, ConfigError) as exc:
        raise SpecError(f"{path}: {exc}") from None


def _parse(raw: Any, path: Path) -> SearchSpec:
    raw = _mapping(raw, "the file")
    _no_unknown(raw, TOP_LEVEL_KEYS, "")
    model = _mapping(raw.get("model"), "model")
    if "name" not in model or not isinstance(model["name"], str):
        raise SpecError("model.name: expected the model family name (e.g. varnet, fivarnet)")
    fixed: dict[str, Any] = {}
    params: list[Param] = []
    for section in ("model", "train", "augment"):
        for key, value in _section_entries(section, _mapping(raw.get(section, {}), section)):
            if isinstance(value, Mapping):
                params.append(_parse_param(key, value, fixed, params))
            else:
                fixed[key] = value
    params_t = tuple(params)
    _validate_values(fixed, params_t)

    search = _settings(SearcherSettings, raw.get("search", {}), "search")
    points = tuple(_parse_point(p, i, fixed, params_t) for i, p in enumerate(search.points_to_evaluate))
    search = dataclasses.replace(search, points_to_evaluate=points)
    _positive("search.num_samples", search.num_samples)
    _positive("search.startup_trials", search.startup_trials)
    asha = _settings(AshaSettings, raw.get("asha", {}), "asha")
    _positive("asha.max_epochs", asha.max_epochs)
    _positive("asha.grace_period", asha.grace_period)
    if asha.grace_period > asha.max_epochs:
        raise SpecError(f"asha.grace_period: expected <= asha.max_epochs ({asha.max_epochs}), got {asha.grace_period}")
    if not isinstance(asha.reduction_factor, int) or asha.reduction_factor < 2:
        raise SpecError(f"asha.reduction_factor: expected an integer >= 2, got {asha.reduction_factor!r}")
    finalize = _mapping(raw.get("finalize", {}), "finalize")
    _no_unknown(finalize, ("epochs",), "finalize.")
    resources = _settings(ResourceSettings, raw.get("resources", {}), "resources")
    if resources.cpus_per_trial is not None:
        _positive("resources.cpus_per_trial", resources.cpus_per_trial)
    if resources.vram_budget_gb <= 0:
        raise SpecError(f"resources.vram_budget_gb: expected > 0, got {resources.vram_budget_gb!r}")
    data = _mapping(raw.get("data", {}), "data")
    _no_unknown(data, ("root", "mask_bank"), "data.")
    # Paths in the file are relative to the file.
    data_root, mask_bank = (None if data.get(key) is None else (path.parent / Path(str(data[key])).expanduser())
                            .resolve() for key in ("root", "mask_bank"))
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        raise SpecError(f"name: expected a short name without spaces or slashes, got {name!r}")
    return SearchSpec(
        name=name, source=path.resolve(), fixed=fixed, params=params_t, search=search, asha=asha,
        finalize_epochs=_positive("finalize.epochs", finalize.get("epochs", 50)), data_root=data_root,
        mask_bank=mask_bank,
        demo=_mapping(raw.get("demo", {}), "demo"), resources=resources, description=str(raw.get("description", "")),
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


def _parse_param(key: str, raw: Mapping[str, Any], fixed: Mapping[str, Any], earlier: Sequence[Param]) -> Param:
    kinds = [k for k in DOMAIN_KINDS if k in raw]
    if len(kinds) != 1:
        raise SpecError(f"{key}: expected exactly one of {list(DOMAIN_KINDS)} (a fixed value is written plainly)")
    kind = kinds[0]
    _no_unknown(raw, (kind, "when", "step", "log") if kind == "int" else (kind, "when"), f"{key}.")
    body = raw[kind]
    when = _parse_when(key, raw.get("when", {}), fixed, earlier)
    if kind == "choice":
        if not isinstance(body, list) or not body:
            raise SpecError(f"{key}.choice: expected a non-empty list of values")
        if len(set(map(repr, body))) != len(body):
            raise SpecError(f"{key}.choice: values must be distinct, got {body}")
        return Param(key, kind, choices=tuple(body), when=when)
    if not (isinstance(body, list) and len(body) == 2 and all(_is_number(v) for v in body)):
        raise SpecError(f"{key}.{kind}: expected [low, high] numbers, got {body!r}")
    low, high = body
    if not low < high:
        raise SpecError(f"{key}.{kind}: expected low < high, got [{low}, {high}]")
    log = kind == "loguniform" or raw.get("log", False) is True
    if log and low <= 0:
        raise SpecError(f"{key}.{kind}: a log range needs low > 0, got {low}")
    if kind == "int":
        step = raw.get("step", 1)
        if not all(isinstance(v, int) for v in (low, high, step)) or step < 1 or (log and step != 1):
            raise SpecError(f"{key}.int: expected integer bounds and an integer step >= 1 (step 1 with log)")
        return Param(key, kind, low=low, high=high, step=step, log=log, when=when)
    return Param(key, kind, low=float(low), high=float(high), log=log, when=when)


def _parse_when(key: str, raw: Any, fixed: Mapping[str, Any], earlier: Sequence[Param]) -> dict[str, tuple]:
    known = set(fixed) | {p.key for p in earlier}
    parts = key.split(".")[:-1]
    out: dict[str, tuple] = {}
    for other, allowed in _mapping(raw, f"{key}.when").items():
        # Relative to the key's own part first, then outwards: augment.mraugment.schedule.p_max may
        # say `when: {enabled: [true]}` or `{mraugment.enabled: [true]}`; a full key works too.
        candidates = [".".join([*parts[:depth], other]) for depth in range(len(parts), 0, -1)] + [other]
        other_key = next((c for c in candidates if c in known), None)
        if other_key is None:
            raise SpecError(f"{key}.when: {other!r} must name a key defined above it")
        out[other_key] = tuple(allowed) if isinstance(allowed, list) else (allowed,)
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
    for section, values in _mapping(raw, where).items():
        for key, value in _section_entries(section, _mapping(values, f"{where}.{section}")):
            if key not in by_key:
                raise SpecError(f"{where}.{key}: not a searched key (searched: {sorted(by_key)})")
            if not by_key[key].contains(value):
                raise SpecError(f"{where}.{key}: {value!r} lies outside its domain")
            point[key] = value
    return point


def _settings(cls: type, raw: Any, section: str) -> Any:
    raw = _mapping(raw, section)
    names = tuple(f.name for f in dataclasses.fields(cls))
    _no_unknown(raw, names, f"{section}.")
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
                _is_number(value) and (isinstance(default, float) or isinstance(value, int))):
            raise SpecError(f"{section}.{name}: expected a number like {default!r}, got {value!r}")
    return cls(**raw)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def _no_unknown(raw: Mapping[str, Any], known: Sequence[str], prefix: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SpecError(f"{prefix}{unknown[0]}: unknown key (expected one of {list(known)})")


def _positive(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"{key}: expected a positive integer, got {value!r}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
