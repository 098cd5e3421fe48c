"""Validated configuration objects for one trial: the training settings and the model choice."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from data.augment import AugmentConfig
from data.errors import UserError
from models import MODEL_CONFIGS, build_model, count_parameters, parse_config

OPTIMIZERS = ("nadam", "adam", "adamw")
SCHEDULERS = ("exponential", "cosine", "step", "none")
PRECISIONS = ("auto", "off", "bf16", "fp16")
# The sections of a trial config YAML (`TrialConfig.as_dict`), in the order they are written.
CONFIG_SECTIONS = ("model", "train", "augment")
# torch.compile modes; "reduce-overhead" also replays CUDA graphs on a card.
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


class ConfigError(UserError):
    """A configuration value is missing, unknown or out of range; the message names the key."""


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained: optimiser, schedule, loss weights and the data budget per epoch."""

    optimizer: str = "nadam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "exponential"
    lr_gamma: float = 0.96
    lr_step_epochs: int = 10
    batch_size: int = 1
    grad_accumulation: int = 1
    grad_clip: float = 1.0
    loss_ssim_weight: float = 1.0
    loss_l1_weight: float = 1.0
    mixed_precision: str = "auto"
    compile: str = "off"
    train_slices_per_epoch: int | None = None
    val_slices: int | None = None
    # Loader worker processes; "auto": none on the CPU (the model needs every core), on a card all but
    # one of the trial's CPUs, so the card never waits for data.
    num_workers: int | str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        _require_choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _require_choice("train.scheduler", self.scheduler, SCHEDULERS)
        _require_choice("train.mixed_precision", self.mixed_precision, PRECISIONS)
        _require_choice("train.compile", self.compile, COMPILE_MODES)
        _require(self.lr > 0, "train.lr", "a positive learning rate", self.lr)
        _require(self.weight_decay >= 0, "train.weight_decay", ">= 0", self.weight_decay)
        _require(0 < self.lr_gamma <= 1, "train.lr_gamma", "a factor in (0, 1]", self.lr_gamma)
        _require(self.lr_step_epochs >= 1, "train.lr_step_epochs", ">= 1", self.lr_step_epochs)
        _require(self.batch_size >= 1, "train.batch_size", ">= 1", self.batch_size)
        _require(self.grad_accumulation >= 1, "train.grad_accumulation", ">= 1", self.grad_accumulation)
        _require(self.grad_clip >= 0, "train.grad_clip", ">= 0 (0 turns clipping off)", self.grad_clip)
        _require(self.loss_ssim_weight >= 0 and self.loss_l1_weight >= 0, "train.loss_*_weight", ">= 0",
                 (self.loss_ssim_weight, self.loss_l1_weight))
        _require(self.loss_ssim_weight + self.loss_l1_weight > 0, "train.loss_*_weight",
                 "at least one positive loss weight", (self.loss_ssim_weight, self.loss_l1_weight))
        for name in ("train_slices_per_epoch", "val_slices"):
            value = getattr(self, name)
            _require(value is None or value >= 1, f"train.{name}", "null or >= 1", value)
        workers_ok = self.num_workers == "auto" or (type(self.num_workers) is int and self.num_workers >= 0)
        _require(workers_ok, "train.num_workers", '"auto" or an integer >= 0', self.num_workers)


@dataclass(frozen=True)
class TrialConfig:
    """One point of the search space: the model's constructor config plus the training settings.

    `model` is the dict `models.build_model` takes (with "name"), already validated and completed with
    the model family's defaults, so every trial of a family carries the same keys. `augment` is what
    the data loaders do to each slice (`data.augment`; all off by default).
    """

    model: Mapping[str, Any]
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> "TrialConfig":
        """Build from `{"model.name": ..., "train.lr": ..., "augment.mask.enabled": ...}` (a trial's config)."""
        sections: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "augment": {}}
        for key, value in flat.items():
            section, _, name = key.partition(".")
            if section not in sections or not name or (section != "augment" and "." in name):
                raise ConfigError(f"{key}: expected a key of the form model.<name>, train.<name> or "
                                  f"augment.<part>.<name>")
            sections[section][name] = value
        return cls.from_dict({"model": sections["model"], "train": sections["train"],
                              "augment": _nest(sections["augment"])})

    @classmethod
    def from_dict(cls, nested: Mapping[str, Any]) -> "TrialConfig":
        """The inverse of `as_dict` (how checkpoints and config YAMLs store a configuration)."""
        return cls(model=complete_model_config(nested["model"]), train=build_train_config(nested.get("train") or {}),
                   augment=build_augment_config(nested.get("augment") or {}))

    def short_name(self) -> str:
        """A run name that says the configuration briefly, e.g. "fivarnet 15+3 f12 u24 i18 s8 lska7"."""
        m = self.model
        if m["name"] == "varnet":
            return f"varnet c{m['num_cascades']} ch{m['chans']} s{m['sens_chans']}"
        if m["name"] == "fivarnet":
            name = (f"fivarnet {m['feature_cascades']}+{m['image_cascades']} f{m['feature_chans']} "
                    f"u{m['unet_chans']} i{m['image_chans']} s{m['sens_chans']}")
            if m["attention"] != "none":
                name = f"{name} {m['attention']}{m['attention_kernel']}"
            return f"{name} alias" if m.get("aliasing_attention") else name
        return str(m["name"])

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """`{"model": {...}, "train": {...}, "augment": {...}}`: the config YAML artifact and checkpoints."""
        return {"model": dict(self.model), "train": dataclasses.asdict(self.train), "augment": self.augment.to_dict()}

    def flat(self) -> dict[str, Any]:
        """The inverse of `from_flat`: every key, defaults included (what MLflow logs as params)."""
        out = {f"model.{k}": v for k, v in self.model.items()}
        out.update({f"train.{k}": v for k, v in dataclasses.asdict(self.train).items()})
        out.update(_flatten("augment", self.augment.to_dict()))
        return out


def build_augment_config(values: Mapping[str, Any]) -> AugmentConfig:
    """AugmentConfig from its nested mapping; errors name the key, e.g. augment.mraugment.max_scaling."""
    try:
        return AugmentConfig.from_dict(values, prefix="augment")
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"mask.schedule.kind": v} -> {"mask": {"schedule": {"kind": v}}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"augment.{key}: {part} is both a value and a section")
        node[leaf] = value
    return out


def _flatten(prefix: str, nested: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            out.update(_flatten(f"{prefix}.{key}", value))
        else:
            out[f"{prefix}.{key}"] = value
    return out


def count_parameters_of(config: TrialConfig) -> int:
    """The model's parameter count, built on the meta device: no memory, no time."""
    with torch.device("meta"):
        return count_parameters(build_model(dict(config.model)))


def build_train_config(values: Mapping[str, Any]) -> TrainConfig:
    """TrainConfig from a mapping, with unknown keys reported by name."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"train.{unknown[0]}: unknown key (expected one of {sorted(known)})")
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"train: {exc}") from None


def complete_model_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a model config against its family and fill in the family's defaults."""
    if values.get("name") not in MODEL_CONFIGS:
        raise ConfigError(f"model.name: expected one of {sorted(MODEL_CONFIGS)}, got {values.get('name')!r}")
    try:
        validated = parse_config(values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model: {exc}") from None
    return {"name": values["name"], **dataclasses.asdict(validated)}


def _require(ok: bool, key: str, expected: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {got!r}")


def _require_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    _require(value in choices, key, f"one of {list(choices)}", value)
