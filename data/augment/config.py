"""Validated, frozen configuration of the slice augmenter: every part off by default.

Build it in code (``AugmentConfig(mraugment=MRAugmentConfig(enabled=True))``) or from the YAML
mapping with :meth:`AugmentConfig.from_dict`, whose errors name the full key, e.g.
"augment.mraugment.max_rotation_deg: expected a number in [0.0, 180.0], got 270".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from data import validation as check

from ..masks import MASK_KINDS
from .schedule import ProbabilitySchedule

COMPRESSION_METHODS = ("none", "scc", "gcc")
PADDING_MODES = ("reflect", "zero")


def _check_schedule(schedule: object) -> None:
    if not isinstance(schedule, ProbabilitySchedule):
        raise ValueError(f"schedule: expected a ProbabilitySchedule, got {schedule!r}")


@dataclasses.dataclass(frozen=True)
class MaskAugmentConfig:
    """Replace a slice's mask, with the scheduled probability, by a fastMRI-family mask.

    ``kinds`` are drawn with relative ``weights`` (empty: equal), the centre fraction uniformly from
    ``center_fraction`` (low, high); the acceleration stays the slice's (or its duplicate's). The
    default range spans fastMRI's 8x (0.04) and 4x / challenge (0.08) centre fractions.
    """

    enabled: bool = False
    schedule: ProbabilitySchedule = ProbabilitySchedule()
    kinds: tuple[str, ...] = MASK_KINDS
    weights: tuple[float, ...] = ()
    center_fraction: tuple[float, float] = (0.04, 0.08)

    def __post_init__(self) -> None:
        check.flag("enabled", self.enabled)
        _check_schedule(self.schedule)
        kinds = check.sequence("kinds", self.kinds)
        if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(MASK_KINDS):
            raise ValueError(f"kinds: expected distinct names from {list(MASK_KINDS)}, got {self.kinds!r}")
        weights = check.sequence("weights", self.weights, len(kinds) if self.weights else None)
        weights = tuple(check.number("weights", w, 0.0, math.inf) for w in weights)
        if weights and sum(weights) <= 0:
            raise ValueError(f"weights: expected at least one positive weight, got {self.weights!r}")
        low, high = check.sequence("center_fraction", self.center_fraction, 2)
        low = check.number("center_fraction", low, 0.0, 0.5)
        high = check.number("center_fraction", high, low, 0.5)
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "center_fraction", (low, high))


@dataclasses.dataclass(frozen=True)
class DuplicationConfig:
    """See every training slice once per acceleration (4 and 8) each epoch, masks from a bank.

    With ``keep_own_mask`` the copy at the file's own acceleration keeps the file's mask and only
    the other copy draws one from the bank; otherwise both draw.
    """

    enabled: bool = False
    keep_own_mask: bool = True

    def __post_init__(self) -> None:
        check.flag("enabled", self.enabled)
        check.flag("keep_own_mask", self.keep_own_mask)


@dataclasses.dataclass(frozen=True)
class MRAugmentConfig:
    """MRAugment-style geometric augmentation of the coil images (Fabian et al. 2021).

    When the schedule fires, each transform applies with probability equal to its weight
    (``flip_h`` ... ``shear``), so its overall rate is p * weight, as in MRAugment. Ranges:
    rotation uniform in +-``max_rotation_deg`` (counter-clockwise as displayed), scale in
    1 +- ``max_scaling``, shift in +-``max_translation`` as fractions of (H, W), two shear angles
    (along rows, along columns) in +-``max_shear_deg``. ``padding``: "reflect" (default: the
    background keeps its noise texture, no zero wedges with sharp edges) or "zero".
    """

    enabled: bool = False
    schedule: ProbabilitySchedule = ProbabilitySchedule()
    flip_h: float = 0.5
    flip_v: float = 0.5
    rotation: float = 1.0
    scaling: float = 1.0
    translation: float = 1.0
    shear: float = 1.0
    max_rotation_deg: float = 180.0
    max_scaling: float = 0.25
    max_translation: tuple[float, float] = (0.08, 0.125)
    max_shear_deg: float = 15.0
    padding: str = "reflect"

    def __post_init__(self) -> None:
        check.flag("enabled", self.enabled)
        _check_schedule(self.schedule)
        for name in ("flip_h", "flip_v", "rotation", "scaling", "translation", "shear"):
            object.__setattr__(self, name, check.number(name, getattr(self, name), 0.0, 1.0))
        limits = {"max_rotation_deg": 180.0, "max_scaling": 0.9, "max_shear_deg": 45.0}
        for name, high in limits.items():
            object.__setattr__(self, name, check.number(name, getattr(self, name), 0.0, high))
        shift = check.sequence("max_translation", self.max_translation, 2)
        object.__setattr__(
            self, "max_translation", tuple(check.number("max_translation", s, 0.0, 0.5) for s in shift)
        )
        check.choice("padding", self.padding, PADDING_MODES)


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """Coil compression to ``num_virtual_coils`` (fewer if a file has fewer coils): SCC or GCC.

    Applied to training and validation alike (the model's input changes). Matrices are estimated
    from the sampled columns only, as they would be at test time; GCC averages the calibration
    covariance over ``gcc_window`` neighbouring readout positions.
    """

    method: str = "none"
    num_virtual_coils: int = 8
    gcc_window: int = 5

    def __post_init__(self) -> None:
        check.choice("method", self.method, COMPRESSION_METHODS)
        check.integer("num_virtual_coils", self.num_virtual_coils, 1)
        check.integer("gcc_window", self.gcc_window, 1)


@dataclasses.dataclass(frozen=True)
class CropConfig:
    """Crop the readout (H) field of view to ``height`` rows in the image domain; None: off.

    Applied to training and validation alike. Slices of at most ``height`` rows are left as they
    are; ``height`` must be at least the target's height.
    """

    height: int | None = None

    def __post_init__(self) -> None:
        if self.height is not None:
            check.integer("height", self.height, 1)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Everything :class:`~data.augment.SliceAugmenter` does; the defaults do nothing."""

    mask: MaskAugmentConfig = MaskAugmentConfig()
    duplication: DuplicationConfig = DuplicationConfig()
    mraugment: MRAugmentConfig = MRAugmentConfig()
    compression: CompressionConfig = CompressionConfig()
    crop: CropConfig = CropConfig()

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if type(value) is not type(field.default):
                raise ValueError(f"{field.name}: expected a {type(field.default).__name__}, got {value!r}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, object] | None, prefix: str = "augment") -> AugmentConfig:
        """Build from a nested mapping (lists for tuples); errors name ``prefix.section.key``."""
        return check.build(cls, raw, prefix)

    def to_dict(self) -> dict:
        """Nested plain dict of every field, tuples as lists (YAML-ready); :meth:`from_dict` inverts it."""
        return _plain(dataclasses.asdict(self))


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value
