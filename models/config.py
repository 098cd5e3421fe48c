"""Validated, frozen hyperparameter configs, one per model name.

Field names equal the model constructors' keyword arguments. Each `__post_init__` raises
ValueError("<model>.<field>: expected ..., got ...") for the first bad value, and turns integral
numbers (e.g. numpy integers from a sampler) into plain ints.
"""

from dataclasses import dataclass
from typing import Any, ClassVar, get_args

from data import validation as check
from models.attention import AttentionKernel, AttentionKind

MAX_POOLS = 6


class _Fields:
    """Checks one config instance's fields with the validation kit, naming them '<model>.<field>'."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def integer(self, field: str, low: int, high: int | None = None, optional: bool = False) -> None:
        self._set(field, check.integer(self._key(field), getattr(self.config, field), low, high, optional=optional))

    def flag(self, field: str) -> None:
        check.flag(self._key(field), getattr(self.config, field))

    def choice(self, field: str, options: tuple[Any, ...]) -> None:
        self._set(field, check.choice(self._key(field), getattr(self.config, field), options))

    def _key(self, field: str) -> str:
        return f"{self.config.NAME}.{field}"

    def _set(self, field: str, value: Any) -> None:
        # Frozen dataclasses: the canonical value (a plain int, the option itself) replaces the given one.
        object.__setattr__(self.config, field, value)


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
        valid = _Fields(self)
        valid.integer("num_cascades", 1)
        valid.integer("chans", 1)
        valid.integer("pools", 1, MAX_POOLS)
        valid.integer("sens_chans", 1)
        valid.integer("sens_pools", 1, MAX_POOLS)
        valid.flag("checkpointing")

    def short_name(self) -> str:
        """A run name that says the configuration briefly, e.g. "varnet c12 ch18 s8"."""
        return f"varnet c{self.num_cascades} ch{self.chans} s{self.sens_chans}"


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
        valid = _Fields(self)
        valid.integer("feature_cascades", 1)
        valid.integer("image_cascades", 0)
        valid.integer("feature_chans", 1)
        valid.integer("unet_chans", 1)
        valid.integer("unet_pools", 1, MAX_POOLS)
        valid.integer("image_chans", 1)
        valid.integer("image_pools", 1, MAX_POOLS)
        valid.integer("sens_chans", 1)
        valid.integer("sens_pools", 1, MAX_POOLS)
        valid.flag("share_encoder")
        valid.integer("extra_conv_every", 0)
        valid.choice("attention", get_args(AttentionKind))
        valid.choice("attention_kernel", get_args(AttentionKernel))
        valid.integer("attention_cascades", 0, self.feature_cascades, optional=True)
        valid.integer("attention_depth", 1, self.unet_pools + 1)
        valid.flag("aliasing_attention")
        valid.flag("checkpointing")

    def short_name(self) -> str:
        """A run name that says the configuration briefly, e.g. "fivarnet 15+3 f12 u24 i18 s8 lska7"."""
        name = (f"fivarnet {self.feature_cascades}+{self.image_cascades} f{self.feature_chans} u{self.unet_chans} "
                f"i{self.image_chans} s{self.sens_chans}")
        if self.attention != "none":
            name = f"{name} {self.attention}{self.attention_kernel}"
        return f"{name} alias" if self.aliasing_attention else name


# The 2025 SNU FastMRI Challenge team's adopted model (docs/models.md): 67,625,464 parameters.
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
