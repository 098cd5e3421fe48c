"""Validated configuration objects for one trial: the training settings and the model choice."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from data import validation as check
from data.augment import AugmentConfig
from data.errors import UserError
from models import MODEL_CONFIGS, ModelConfig, build_model, config_dict, count_parameters, parse_config

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
        for name, options in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS),
                              ("mixed_precision", PRECISIONS), ("compile", COMPILE_MODES)):
            check.choice(f"train.{name}", getattr(self, name), options)
        check.number("train.lr", self.lr, 0.0, math.inf, open_low=True)
        check.number("train.lr_gamma", self.lr_gamma, 0.0, 1.0, open_low=True)
        for name in ("weight_decay", "grad_clip", "loss_ssim_weight", "loss_l1_weight"):
            check.number(f"train.{name}", getattr(self, name), 0.0, math.inf)
        check.require(self.loss_ssim_weight + self.loss_l1_weight > 0, "train.loss_*_weight",
                      "at least one positive loss weight", (self.loss_ssim_weight, self.loss_l1_weight))
        for name in ("lr_step_epochs", "batch_size", "grad_accumulation", "seed"):
            check.integer(f"train.{name}", getattr(self, name), 0 if name == "seed" else 1)
        for name in ("train_slices_per_epoch", "val_slices"):
            check.integer(f"train.{name}", getattr(self, name), 1, optional=True)
        if self.num_workers != "auto":
            check.integer("train.num_workers", self.num_workers, 0)


@dataclass(frozen=True)
class TrialConfig:
    """One point of the search space: the model's constructor config plus the training settings.

    `model` is the model family's validated config (`models.VarNetConfig`, `models.FIVarNetConfig`), so
    every trial of a family carries the same fields. `augment` is what the data loaders do to each
    slice (`data.augment`; all off by default).
    """

    model: ModelConfig
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
        """A run name that says the configuration briefly; each model family words its own."""
        return self.model.short_name()

    def with_checkpointing(self, on: bool) -> TrialConfig:
        """The same configuration with the model's activation checkpointing on or off."""
        return dataclasses.replace(self, model=dataclasses.replace(self.model, checkpointing=on))

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """`{"model": {...}, "train": {...}, "augment": {...}}`: the config YAML artifact and checkpoints."""
        return {"model": config_dict(self.model), "train": dataclasses.asdict(self.train),
                "augment": self.augment.to_dict()}

    def flat(self) -> dict[str, Any]:
        """The inverse of `from_flat`: every key, defaults included (what MLflow logs as params)."""
        out = {f"model.{k}": v for k, v in config_dict(self.model).items()}
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
        return count_parameters(build_model(config.model))


def build_train_config(values: Mapping[str, Any]) -> TrainConfig:
    """TrainConfig from a mapping; unknown keys and bad values raise ConfigError naming the key."""
    try:
        check.no_unknown(values, [f.name for f in dataclasses.fields(TrainConfig)], "train.")
        return TrainConfig(**values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def complete_model_config(values: Mapping[str, Any]) -> ModelConfig:
    """Validate a model config against its family, with the family's defaults for what it leaves out."""
    if values.get("name") not in MODEL_CONFIGS:
        raise ConfigError(f"model.name: expected one of {sorted(MODEL_CONFIGS)}, got {values.get('name')!r}")
    try:
        return parse_config(values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model: {exc}") from None
