"""Validated, frozen hyperparameter configs, one per model name.

Field names equal the model constructors' keyword arguments. Each `__post_init__` raises
ValueError("<model>.<field>: expected ..., got ...") for the first bad value, and turns integral
numbers (e.g. numpy integers from a sampler) into plain ints.
"""

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn, get_args

from models.attention import AttentionKernel, AttentionKind

MAX_POOLS = 6


class _Validator:
    """Checks the fields of one config instance, naming them as '<model>.<field>' in errors."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def _fail(self, field: str, expected: str, value: Any) -> NoReturn:
        raise ValueError(f"{self.config.NAME}.{field}: expected {expected}, got {value!r}")

    def integer(self, field: str, low: int, high: int | None = None, optional: bool = False) -> None:
        value = getattr(self.config, field)
        if optional and value is None:
            return
        bounds = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        if optional:
            bounds += " or None"
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            self._fail(field, bounds, value)
        if value < low or (high is not None and value > high):
            self._fail(field, bounds, value)
        object.__setattr__(self.config, field, int(value))

    def boolean(self, field: str) -> None:
        value = getattr(self.config, field)
        if not isinstance(value, bool):
            self._fail(field, "a bool", value)

    def choice(self, field: str, choices: tuple[Any, ...]) -> None:
        value = getattr(self.config, field)
        # bool == 1 and 7.0 == 7 would otherwise slip through as look-alikes of valid choices.
        matches = [c for c in choices if not isinstance(value, (bool, float)) and value == c]
        if not matches:
            self._fail(field, f"one of {list(choices)}", value)
        object.__setattr__(self.config, field, matches[0])


@dataclass(frozen=True)
class VarNetConfig:
    """E2E-VarNet hyperparameters; the defaults are fastMRI's VarNet (29,936,966 parameters)."""

    NAME: ClassVar[str] = "varnet"

    num_cascades: int = 12
    chans: int = 18
    pools: int = 4
    sens_chans: int = 8
    sens_pools: int = 4
    checkpointing: bool = False

    def __post_init__(self) -> None:
        check = _Validator(self)
        check.integer("num_cascades", 1)
        check.integer("chans", 1)
        check.integer("pools", 1, MAX_POOLS)
        check.integer("sens_chans", 1)
        check.integer("sens_pools", 1, MAX_POOLS)
        check.boolean("checkpointing")


@dataclass(frozen=True)
class FIVarNetConfig:
    """FI-VarNet hyperparameters; the defaults are a small model (see `FIVARNET_2025` for a large one).

    attention_cascades None means every feature cascade; attention_depth counts U-Net levels from the
    bottleneck up; extra_conv_every 0 disables the extra residual convs; aliasing_attention adds
    block-wise aliasing attention (models.aliasing) to every feature cascade.
    """

    NAME: ClassVar[str] = "fivarnet"

    feature_cascades: int = 6
    image_cascades: int = 1
    feature_chans: int = 8
    unet_chans: int = 16
    unet_pools: int = 4
    image_chans: int = 12
    image_pools: int = 4
    sens_chans: int = 4
    sens_pools: int = 4
    share_encoder: bool = True
    extra_conv_every: int = 3
    attention: AttentionKind = "none"
    attention_kernel: AttentionKernel = 7
    attention_cascades: int | None = None
    attention_depth: int = 3
    aliasing_attention: bool = False
    checkpointing: bool = False

    def __post_init__(self) -> None:
        check = _Validator(self)
        check.integer("feature_cascades", 1)
        check.integer("image_cascades", 0)
        check.integer("feature_chans", 1)
        check.integer("unet_chans", 1)
        check.integer("unet_pools", 1, MAX_POOLS)
        check.integer("image_chans", 1)
        check.integer("image_pools", 1, MAX_POOLS)
        check.integer("sens_chans", 1)
        check.integer("sens_pools", 1, MAX_POOLS)
        check.boolean("share_encoder")
        check.integer("extra_conv_every", 0)
        check.choice("attention", get_args(AttentionKind))
        check.choice("attention_kernel", get_args(AttentionKernel))
        check.integer("attention_cascades", 0, self.feature_cascades, optional=True)
        check.integer("attention_depth", 1, self.unet_pools + 1)
        check.boolean("aliasing_attention")
        check.boolean("checkpointing")


# The 2025 SNU FastMRI Challenge team's adopted model (DESIGN.md 3a): 67,625,464 parameters.
FIVARNET_2025 = FIVarNetConfig(
    feature_cascades=15,
    image_cascades=3,
    feature_chans=12,
    unet_chans=24,
    unet_pools=4,
    image_chans=18,
    image_pools=4,
    sens_chans=8,
    sens_pools=4,
    share_encoder=True,
    extra_conv_every=3,
    attention="lska",
    attention_kernel=7,
    attention_cascades=5,
    attention_depth=3,
)
