"""The simulated demo dataset, written in the SNU layout (see ``data.snu``), plus a held-out leaderboard.

Each file is one simulated multi-coil scan: anatomy from ``data.phantoms`` in a per-file contrast with
a smooth complex phase, seen by a per-file number of surface coils with smooth complex sensitivities,
Fourier transformed with 2x readout oversampling (the object fills the central half of H), plus
complex Gaussian k-space noise of a per-file level. The target is the RSS of the fully sampled coil
images cropped to ``target_shape``, scaled to the challenge's absolute intensity range; the mask is
equispaced with a per-file offset.

Layout::

    ROOT/{train,val}/kspace/{brain,knee}_acc{4,8}_{N}.h5      kspace fully sampled, mask (W,)
    ROOT/{train,val}/image/<same name>.h5                      image_label, image_input, attrs max
    ROOT/leaderboard/acc{4,8}/kspace/{brain,knee}_test{i}.h5   kspace already undersampled, mask (W,)
    ROOT/leaderboard/acc{4,8}/image/<same name>.h5             as in train/val
    ROOT/demo_spec.json

Train/val k-space is stored fully sampled with a separate mask, as in the challenge's train/val sets.
Leaderboard k-space is stored with the mask applied (zero-filled columns), as held-out test data
comes, so nothing can train on its missing columns; each leaderboard scan appears in both acc4/
and acc8/ under its own mask. The search reads only train/ and val/. Image files also carry the
scan's simulated protocol as attributes ``acquisition`` (contrast name) and ``noise_std``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from .masks import center_mask
from .phantoms import BRAIN_CONTRASTS, KNEE_CONTRASTS, MAX_BRAIN_SLICES, brain_slices, knee_slices, smooth_noise
from .snu import ACCELERATIONS, ORGANS
from .transforms import center_crop, fft2c, ifft2c, rss

# Bump whenever the simulator would produce different data for the same spec, so that cached
# demo datasets keyed on demo_spec.json are regenerated.
GENERATOR_VERSION = 2
SPEC_FILE = "demo_spec.json"
LEADERBOARD_DIR = "leaderboard"
_SPLITS = ("train", "val")
_PHANTOMS = {"brain": brain_slices, "knee": knee_slices}
_CONTRASTS = {"brain": BRAIN_CONTRASTS, "knee": KNEE_CONTRASTS}


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
            value = getattr(self, name)
            if not _is_int(value) or value < minimum:
                raise ValueError(f"DemoSpec.{name} must be an integer >= {minimum}, got {value!r}")
        if self.slices_per_file > MAX_BRAIN_SLICES:
            raise ValueError(f"DemoSpec.slices_per_file must be <= {MAX_BRAIN_SLICES} (the brain template's "
                             f"mid-brain slab), got {self.slices_per_file}")
        height, width = _int_pair("kspace_shape", self.kspace_shape, 16)
        target_h, target_w = _int_pair("target_shape", self.target_shape, 1)
        if target_h > height or target_w > width:
            raise ValueError(f"DemoSpec.target_shape {self.target_shape} must fit in kspace_shape {self.kspace_shape}")
        if not _is_number(self.center_fraction) or not 0 < self.center_fraction < 1 \
                or round(width * self.center_fraction) < 1:
            raise ValueError(
                f"DemoSpec.center_fraction must be in (0, 1) and give at least one centre column "
                f"of {width}, got {self.center_fraction}"
            )
        if self.mask_offset is not None and not (_is_int(self.mask_offset) and 0 <= self.mask_offset < 4):
            raise ValueError(f"DemoSpec.mask_offset must be None or an integer in [0, 4), got {self.mask_offset!r}")
        # Normalise lists (e.g. from JSON) to tuples so that equal specs compare and hash equal.
        normalised = {
            "num_coils": _int_or_range("num_coils", self.num_coils),
            "kspace_shape": (height, width),
            "target_shape": (target_h, target_w),
            "noise_std": _number_or_range("noise_std", self.noise_std),
            "intensity_range": _positive_range("intensity_range", self.intensity_range),
            **{f"{organ}_contrasts": _names(f"{organ}_contrasts", getattr(self, f"{organ}_contrasts"),
                                            _CONTRASTS[organ]) for organ in ORGANS},
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
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown DemoSpec fields {sorted(unknown)}")
        return cls(**fields)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pair(name: str, value: object) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"DemoSpec.{name} must be a pair, got {value!r}")
    return tuple(value)


def _int_pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    pair = _pair(name, value)
    if any(not _is_int(v) or v < minimum for v in pair):
        raise ValueError(f"DemoSpec.{name} must be two integers >= {minimum}, got {value!r}")
    return pair


def _int_or_range(name: str, value: object) -> int | tuple[int, int]:
    if _is_int(value) and value >= 1:
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value) \
            and 1 <= value[0] <= value[1]:
        return tuple(value)
    raise ValueError(f"DemoSpec.{name} must be an integer >= 1 or a range [low, high], 1 <= low <= high, "
                     f"got {value!r}")


def _positive_range(name: str, value: object) -> tuple[float, float]:
    low, high = _pair(name, value)
    if not (_is_number(low) and _is_number(high) and 0 < low <= high):
        raise ValueError(f"DemoSpec.{name} must satisfy 0 < low <= high, got {value!r}")
    return float(low), float(high)


def _number_or_range(name: str, value: object) -> float | tuple[float, float]:
    if not _is_number(value):
        return _positive_range(name, value)
    if not value >= 0:
        raise ValueError(f"DemoSpec.{name} must be >= 0, got {value}")
    return float(value)


def _names(name: str, value: object, allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (tuple, list)) or not names or any(n not in allowed for n in names):
        raise ValueError(f"DemoSpec.{name} must be a non-empty list of names from {allowed}, got {value!r}")
    return tuple(names)


class _Protocol(NamedTuple):
    """One scan's acquisition settings, drawn from the spec."""

    contrast: str
    num_coils: int
    noise_std: float
    intensity: float  # noise-free target maximum
    mask_offsets: dict[int, int]  # first outer mask column, per acceleration


def _draw_protocol(rng: np.random.Generator, spec: DemoSpec, organ: str) -> _Protocol:
    # The same draws whatever the spec pins, so pinning one setting leaves the others as they were.
    u_contrast, u_coils, u_noise, u_intensity, *u_offsets = rng.uniform(size=4 + len(ACCELERATIONS))
    contrasts = getattr(spec, f"{organ}_contrasts")
    if isinstance(spec.num_coils, int):
        num_coils = spec.num_coils
    else:
        low, high = spec.num_coils
        num_coils = low + int(u_coils * (high - low + 1))
    if isinstance(spec.noise_std, float):
        noise_std = spec.noise_std
    else:
        log_low, log_high = np.log(spec.noise_std)
        noise_std = float(np.exp(log_low + u_noise * (log_high - log_low)))
    low, high = spec.intensity_range
    return _Protocol(
        contrast=contrasts[int(u_contrast * len(contrasts))],
        num_coils=num_coils,
        noise_std=noise_std,
        intensity=low + u_intensity * (high - low),
        mask_offsets={
            acc: int(u * acc) if spec.mask_offset is None else spec.mask_offset
            for acc, u in zip(ACCELERATIONS, u_offsets, strict=True)
        },
    )


def _coil_sensitivities(
    rng: np.random.Generator, num_coils: int, shape: tuple[int, int], object_shape: tuple[int, int]
) -> np.ndarray:
    """Surface-coil sensitivities (C, H, W) complex, RSS max 1, coils on a ring around the object."""
    height, width = shape
    rows, cols = np.meshgrid(
        np.arange(height) - (height - 1) / 2, np.arange(width) - (width - 1) / 2, indexing="ij"
    )
    angles = 2 * np.pi * (np.arange(num_coils) + rng.uniform(-0.2, 0.2, num_coils)) / num_coils
    angles += rng.uniform(0, 2 * np.pi)
    ring = 0.6 * np.array(object_shape) * rng.uniform(0.95, 1.1, (num_coils, 1))
    centers = ring * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    radius = 0.45 * min(object_shape) * rng.uniform(0.8, 1.2, num_coils)
    maps = np.empty((num_coils, height, width), dtype=np.complex128)
    for c in range(num_coils):
        dist2 = (rows - centers[c, 0]) ** 2 + (cols - centers[c, 1]) ** 2
        # On-axis field of a circular loop (Biot-Savart), used as a smooth radial fall-off.
        magnitude = radius[c] ** 3 / (radius[c] ** 2 + dist2) ** 1.5
        tilt = rng.normal(0, 0.6, 2) / np.array(shape)  # radians per pixel
        phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * (tilt[0] * rows + tilt[1] * cols)
        maps[c] = magnitude * np.exp(1j * phase)
    return maps / rss(maps).max()


def _object_phase(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth random phase map (H, W) in radians: linear ramp plus a low-frequency field."""
    height, width = shape
    rows, cols = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    ramp = rng.uniform(-np.pi, np.pi) + rng.normal(0, 0.7) * rows + rng.normal(0, 0.7) * cols
    return ramp + rng.uniform(0.3, 1.0) * smooth_noise(rng, shape, (height / 8, width / 8))


def _simulate_scan(
    rng: np.random.Generator, spec: DemoSpec, organ: str, protocol: _Protocol
) -> np.ndarray:
    """One fully sampled scan: kspace (S, C, H, W) complex64, C = ``protocol.num_coils``."""
    height, width = spec.kspace_shape
    object_shape = (height // 2, min(spec.target_shape[1], width))
    anatomy = _PHANTOMS[organ](rng, spec.slices_per_file, object_shape, protocol.contrast)
    top, left = (height - object_shape[0]) // 2, (width - object_shape[1]) // 2
    canvas = np.zeros((spec.slices_per_file, height, width), dtype=np.complex128)
    canvas[:, top : top + object_shape[0], left : left + object_shape[1]] = anatomy
    canvas *= np.exp(1j * np.stack([_object_phase(rng, (height, width)) for _ in canvas]))
    sens = _coil_sensitivities(rng, protocol.num_coils, (height, width), object_shape)
    coil_images = canvas[:, None] * sens[None]  # (S, C, H, W)

    coil_images *= protocol.intensity / rss(coil_images, axis=1).max()
    kspace = fft2c(coil_images)
    noise = rng.standard_normal((2, *kspace.shape))
    kspace += protocol.noise_std / np.sqrt(2) * (noise[0] + 1j * noise[1])
    return kspace.astype(np.complex64)


def _equispaced_mask(width: int, acceleration: int, center_fraction: float, offset: int) -> np.ndarray:
    """The challenge's mask (W,) float32: every R-th column from ``offset``, plus the centre block."""
    mask = center_mask(width, round(width * center_fraction))
    mask[offset::acceleration] = True
    return mask.astype(np.float32)


def _images(kspace: np.ndarray, mask: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """image_label (RSS of the fully sampled ``kspace``) and image_input (zero-filled), (S, h, w)."""
    return {
        "image_label": center_crop(rss(ifft2c(kspace), axis=1), shape).astype(np.float32),
        "image_input": center_crop(rss(ifft2c(kspace * mask), axis=1), shape).astype(np.float32),
    }


def _write_pair(
    directory: Path, name: str, kspace: np.ndarray, mask: np.ndarray, images: dict[str, np.ndarray],
    protocol: _Protocol,
) -> None:
    with h5py.File(directory / "kspace" / name, "w") as f:
        f.create_dataset("kspace", data=kspace)
        f.create_dataset("mask", data=mask)
    with h5py.File(directory / "image" / name, "w") as f:
        for key, value in images.items():
            f.create_dataset(key, data=value)
        f.attrs["max"] = float(images["image_label"].max())
        f.attrs["acquisition"] = protocol.contrast
        f.attrs["noise_std"] = protocol.noise_std


def _scan(spec: DemoSpec, key: list[int], organ: str) -> tuple[_Protocol, np.ndarray]:
    # Separate streams, so that a file's anatomy does not depend on which settings the spec pins.
    protocol = _draw_protocol(np.random.default_rng([*key, 0]), spec, organ)
    return protocol, _simulate_scan(np.random.default_rng([*key, 1]), spec, organ, protocol)


def _write_all(root: Path, spec: DemoSpec) -> None:
    width = spec.kspace_shape[1]
    counts = {"train": spec.train_files_per_category, "val": spec.val_files_per_category}
    for split_idx, split in enumerate(_SPLITS):
        for sub in ("kspace", "image"):
            (root / split / sub).mkdir(parents=True)
        first = 1 if split == "train" else spec.train_files_per_category + 1
        for organ_idx, organ in enumerate(ORGANS):
            for acc in ACCELERATIONS:
                for number in range(first, first + counts[split]):
                    # One independent stream per file: files do not change when others are added.
                    protocol, kspace = _scan(spec, [spec.seed, split_idx, organ_idx, acc, number], organ)
                    mask = _equispaced_mask(width, acc, spec.center_fraction, protocol.mask_offsets[acc])
                    images = _images(kspace, mask, spec.target_shape)
                    _write_pair(root / split, f"{organ}_acc{acc}_{number}.h5", kspace, mask, images, protocol)

    if spec.leaderboard_files_per_category:
        for acc in ACCELERATIONS:
            for sub in ("kspace", "image"):
                (root / LEADERBOARD_DIR / f"acc{acc}" / sub).mkdir(parents=True)
    for organ_idx, organ in enumerate(ORGANS):
        for number in range(1, spec.leaderboard_files_per_category + 1):
            # Acceleration slot 0: one scan, masked once per acceleration.
            protocol, kspace = _scan(spec, [spec.seed, len(_SPLITS), organ_idx, 0, number], organ)
            for acc in ACCELERATIONS:
                mask = _equispaced_mask(width, acc, spec.center_fraction, protocol.mask_offsets[acc])
                images = _images(kspace, mask, spec.target_shape)
                _write_pair(root / LEADERBOARD_DIR / f"acc{acc}", f"{organ}_test{number}.h5",
                            (kspace * mask).astype(np.complex64), mask, images, protocol)
    (root / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2) + "\n")


def _is_nonempty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def write_demo_dataset(out: str | Path, spec: DemoSpec = DemoSpec()) -> Path:
    """Simulate ``spec`` into ``out`` (SNU layout plus ``demo_spec.json``) and return ``out``.

    Written into a temporary sibling directory and renamed into place, so ``out`` is either
    complete or absent; an existing non-empty ``out`` is never overwritten (FileExistsError).
    """
    out = Path(out)
    if _is_nonempty(out):
        raise FileExistsError(
            f"{out}: exists and is not an empty directory; refusing to overwrite it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        _write_all(tmp, spec)
        tmp.chmod(0o755)  # mkdtemp creates it private
        try:
            os.replace(tmp, out)  # atomic; replaces an empty directory, fails on a non-empty one
        except OSError as exc:
            raise FileExistsError(
                f"{out}: appeared while the demo data was written ({exc})"
            ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def ensure_demo_dataset(out: str | Path, spec: DemoSpec = DemoSpec()) -> Path:
    """Return ``out`` if it already holds the demo data of ``spec``, else write it there.

    Raises FileExistsError if ``out`` holds anything else. Safe against a concurrent writer
    of the same spec (whichever rename wins, both callers get the same data).
    """
    out = Path(out)
    if _matches(out, spec):
        return out
    try:
        return write_demo_dataset(out, spec)
    except FileExistsError:
        if _matches(out, spec):
            return out
        raise


def _matches(out: Path, spec: DemoSpec) -> bool:
    try:
        return DemoSpec.from_dict(json.loads((out / SPEC_FILE).read_text())) == spec
    except (OSError, ValueError, TypeError):
        return False
