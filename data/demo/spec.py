"""What the demo simulator makes (`DemoSpec`): sizes, file counts and per-file acquisition settings."""

from __future__ import annotations

import dataclasses

from data import validation as check
from data.category import ORGANS
from data.demo.phantoms import BRAIN_CONTRASTS, KNEE_CONTRASTS, MAX_BRAIN_SLICES

# Bump whenever the simulator would produce different data for the same spec, so that cached
# demo datasets keyed on demo_spec.json are regenerated.
GENERATOR_VERSION = 2
CONTRASTS = {"brain": BRAIN_CONTRASTS, "knee": KNEE_CONTRASTS}


@dataclasses.dataclass(frozen=True)
class DemoSpec:
    """What to simulate. Shapes are (rows, columns) = (H readout, W phase-encode).

    Per-file acquisition settings are pinned by one value or drawn per file (seeded) from: a pair
    ``(low, high)`` for ``num_coils`` (uniform integers, inclusive) and ``noise_std`` (log-uniform),
    a tuple of names for the contrasts (uniform choice), ``None`` for ``mask_offset`` (uniform in
    [0, R)). Every file keeps ``kspace_shape``, so all files of a category share one width.
    """

    seed: int = 0
    num_coils: int | tuple[int, int] = (6, 10)
    kspace_shape: tuple[int, int] = (160, 96)
    target_shape: tuple[int, int] = (80, 80)
    slices_per_file: int = 4
    train_files_per_category: int = 2
    val_files_per_category: int = 1
    # Held out in ROOT/leaderboard: this many scans per organ, each stored at both accelerations.
    leaderboard_files_per_category: int = 1
    center_fraction: float = 0.08
    # Std of the complex k-space noise, absolute: with orthonormal FFTs it is also the per-coil
    # image noise, so the target background is about noise_std * sqrt(num_coils).
    noise_std: float | tuple[float, float] = (1e-6, 3e-6)
    # Per-file range of the noise-free target maximum (the challenge's targets are ~1e-4..5e-4,
    # and its leaderboard ROI thresholds are absolute: 5e-5 brain, 2e-5 knee).
    intensity_range: tuple[float, float] = (1.5e-4, 4e-4)
    brain_contrasts: tuple[str, ...] = BRAIN_CONTRASTS
    knee_contrasts: tuple[str, ...] = KNEE_CONTRASTS
    # First outer column of every equispaced mask; below 4 so that it is valid at both accelerations.
    mask_offset: int | None = None

    def __post_init__(self) -> None:
        for name, minimum in (("seed", 0), ("slices_per_file", 1), ("train_files_per_category", 1),
                              ("val_files_per_category", 1), ("leaderboard_files_per_category", 0)):
            check.integer(f"demo.{name}", getattr(self, name), minimum)
        # The brain template's mid-brain slab holds this many slices.
        check.integer("demo.slices_per_file", self.slices_per_file, 1, MAX_BRAIN_SLICES)
        height, width = _integers("demo.kspace_shape", self.kspace_shape, 16)
        target_h, target_w = _integers("demo.target_shape", self.target_shape, 1)
        check.require(target_h <= height and target_w <= width, "demo.target_shape",
                      f"a shape that fits in kspace_shape {self.kspace_shape}", self.target_shape)
        check.number("demo.center_fraction", self.center_fraction, 0.0, 1.0, open_low=True)
        check.require(self.center_fraction < 1 and round(width * self.center_fraction) >= 1, "demo.center_fraction",
                      f"a fraction in (0, 1) that gives at least one centre column of {width}", self.center_fraction)
        # Below 4 so that the offset is valid at both accelerations.
        check.integer("demo.mask_offset", self.mask_offset, 0, 3, optional=True)
        # Normalise lists (e.g. from JSON) to tuples so that equal specs compare and hash equal.
        normalised = {
            "num_coils": _coils(self.num_coils),
            "kspace_shape": (height, width),
            "target_shape": (target_h, target_w),
            "noise_std": _level_or_range("demo.noise_std", self.noise_std),
            "intensity_range": _positive_range("demo.intensity_range", self.intensity_range),
            **{f"{organ}_contrasts": _names(f"demo.{organ}_contrasts", getattr(self, f"{organ}_contrasts"),
                                            CONTRASTS[organ]) for organ in ORGANS},
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """JSON-ready fields, plus the generator version (the demo cache key)."""
        return {"generator_version": GENERATOR_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, fields: dict) -> DemoSpec:
        """Inverse of :meth:`to_dict`; rejects unknown fields and other generator versions."""
        fields = dict(fields)
        version = fields.pop("generator_version", GENERATOR_VERSION)
        if version != GENERATOR_VERSION:
            raise ValueError(f"demo spec is for generator version {version}, this is {GENERATOR_VERSION}")
        check.no_unknown(fields, [f.name for f in dataclasses.fields(cls)], "demo.")
        return cls(**fields)


def _integers(key: str, value: object, minimum: int) -> tuple[int, int]:
    first, second = check.sequence(key, value, 2)
    return check.integer(key, first, minimum), check.integer(key, second, minimum)  # type: ignore[return-value]


def _coils(value: object) -> int | tuple[int, int]:
    """A pinned coil count, or an inclusive range [low, high] drawn per file."""
    if not isinstance(value, (list, tuple)):
        return check.integer("demo.num_coils", value, 1)  # type: ignore[return-value]
    low, high = _integers("demo.num_coils", value, 1)
    check.require(low <= high, "demo.num_coils", "a range [low, high] with low <= high", value)
    return low, high


def _positive_range(key: str, value: object) -> tuple[float, float]:
    low, high = check.sequence(key, value, 2)
    check.require(check.is_number(low) and check.is_number(high) and 0 < low <= high, key,
                  "a range [low, high] with 0 < low <= high", value)
    return float(low), float(high)


def _level_or_range(key: str, value: object) -> float | tuple[float, float]:
    """A pinned level >= 0, or a range [low, high] drawn log-uniformly per file."""
    if isinstance(value, (list, tuple)):
        return _positive_range(key, value)
    return check.number(key, value, 0.0, float("inf"))


def _names(key: str, value: object, allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else value
    ok = isinstance(names, (tuple, list)) and bool(names) and all(n in allowed for n in names)
    check.require(ok, key, f"a non-empty list of names from {allowed}", value)
    return tuple(names)  # type: ignore[arg-type]
