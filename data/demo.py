"""The simulated demo dataset, written in the SNU layout (see ``data.snu``).

Each file is one simulated multi-coil scan: anatomy from ``data.phantoms`` with a smooth complex
phase, seen by surface coils with smooth complex sensitivities, Fourier transformed with 2x
readout oversampling (the object fills the central half of H), plus complex Gaussian k-space
noise. The k-space is stored fully sampled with a separate equispaced mask, as in the challenge's
train/val sets, and the target is the RSS of the fully sampled coil images cropped to
``target_shape``, scaled to the challenge's absolute intensity range.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np

from .masks import make_mask
from .phantoms import MAX_BRAIN_SLICES, brain_slices, knee_slices, smooth_noise
from .snu import ACCELERATIONS, ORGANS
from .transforms import center_crop, fft2c, ifft2c, rss

# Bump whenever the simulator would produce different data for the same spec, so that cached
# demo datasets keyed on demo_spec.json are regenerated.
GENERATOR_VERSION = 1
SPEC_FILE = "demo_spec.json"
_SPLITS = ("train", "val")
_PHANTOMS = {"brain": brain_slices, "knee": knee_slices}


@dataclasses.dataclass(frozen=True)
class DemoSpec:
    """What to simulate. Shapes are (rows, columns) = (H readout, W phase-encode)."""

    seed: int = 0
    num_coils: int = 8
    kspace_shape: tuple[int, int] = (160, 96)
    target_shape: tuple[int, int] = (80, 80)
    slices_per_file: int = 4
    train_files_per_category: int = 2
    val_files_per_category: int = 1
    center_fraction: float = 0.08
    # Std of the complex k-space noise, absolute: with orthonormal FFTs it is also the per-coil
    # image noise, so the target background is about noise_std * sqrt(num_coils).
    noise_std: float = 2e-6
    # Per-file range of the noise-free target maximum (the challenge's targets are ~1e-4..5e-4,
    # and its leaderboard ROI thresholds are absolute: 5e-5 brain, 2e-5 knee).
    intensity_range: tuple[float, float] = (1.5e-4, 4e-4)

    def __post_init__(self) -> None:
        for name in ("seed", "num_coils", "slices_per_file", "train_files_per_category",
                     "val_files_per_category"):
            value = getattr(self, name)
            minimum = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"DemoSpec.{name} must be an integer >= {minimum}, got {value!r}")
        if self.slices_per_file > MAX_BRAIN_SLICES:
            raise ValueError(
                f"DemoSpec.slices_per_file must be <= {MAX_BRAIN_SLICES} (the brain template's "
                f"mid-brain slab), got {self.slices_per_file}"
            )
        height, width = _int_pair("kspace_shape", self.kspace_shape, 16)
        target_h, target_w = _int_pair("target_shape", self.target_shape, 1)
        if target_h > height or target_w > width:
            raise ValueError(
                f"DemoSpec.target_shape {self.target_shape} must fit in "
                f"kspace_shape {self.kspace_shape}"
            )
        if not _is_number(self.center_fraction) or not 0 < self.center_fraction < 1 \
                or round(width * self.center_fraction) < 1:
            raise ValueError(
                f"DemoSpec.center_fraction must be in (0, 1) and give at least one centre column "
                f"of {width}, got {self.center_fraction}"
            )
        if not _is_number(self.noise_std) or not self.noise_std >= 0:
            raise ValueError(f"DemoSpec.noise_std must be >= 0, got {self.noise_std}")
        low, high = _pair("intensity_range", self.intensity_range)
        if not (_is_number(low) and _is_number(high) and 0 < low <= high):
            raise ValueError(
                f"DemoSpec.intensity_range must satisfy 0 < low <= high, got {self.intensity_range}"
            )
        # Normalise lists (e.g. from JSON) to tuples so that equal specs compare and hash equal.
        object.__setattr__(self, "kspace_shape", (height, width))
        object.__setattr__(self, "target_shape", (target_h, target_w))
        object.__setattr__(self, "intensity_range", (float(low), float(high)))

    def to_dict(self) -> dict:
        """JSON-ready fields, plus the generator version (the demo cache key)."""
        return {"generator_version": GENERATOR_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, fields: dict) -> DemoSpec:
        """Inverse of :meth:`to_dict`; rejects unknown fields and other generator versions."""
        fields = dict(fields)
        version = fields.pop("generator_version", GENERATOR_VERSION)
        if version != GENERATOR_VERSION:
            raise ValueError(
                f"demo spec is for generator version {version}, this is {GENERATOR_VERSION}"
            )
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown DemoSpec fields {sorted(unknown)}")
        return cls(**fields)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _pair(name: str, value: object) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"DemoSpec.{name} must be a pair, got {value!r}")
    return tuple(value)


def _int_pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    pair = _pair(name, value)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair):
        raise ValueError(f"DemoSpec.{name} must be two integers >= {minimum}, got {value!r}")
    return pair


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


def _simulate_file(
    rng: np.random.Generator, spec: DemoSpec, organ: str, acceleration: int
) -> dict[str, np.ndarray]:
    """One scan: kspace (S, C, H, W) complex64, mask (W,) float32, image_label / image_input (S, h, w)."""
    height, width = spec.kspace_shape
    object_shape = (height // 2, min(spec.target_shape[1], width))
    anatomy = _PHANTOMS[organ](rng, spec.slices_per_file, object_shape)
    top, left = (height - object_shape[0]) // 2, (width - object_shape[1]) // 2
    canvas = np.zeros((spec.slices_per_file, height, width), dtype=np.complex128)
    canvas[:, top : top + object_shape[0], left : left + object_shape[1]] = anatomy
    canvas *= np.exp(1j * np.stack([_object_phase(rng, (height, width)) for _ in canvas]))
    sens = _coil_sensitivities(rng, spec.num_coils, (height, width), object_shape)
    coil_images = canvas[:, None] * sens[None]  # (S, C, H, W)

    clean_max = rss(coil_images, axis=1).max()
    coil_images *= rng.uniform(*spec.intensity_range) / clean_max
    kspace = fft2c(coil_images)
    noise = rng.standard_normal((2, *kspace.shape))
    kspace += spec.noise_std / np.sqrt(2) * (noise[0] + 1j * noise[1])
    kspace = kspace.astype(np.complex64)

    seed = int(rng.integers(2**31))
    mask = make_mask("equispaced", width, acceleration, spec.center_fraction, seed)
    target = center_crop(rss(ifft2c(kspace), axis=1), spec.target_shape)
    zero_filled = center_crop(rss(ifft2c(kspace * mask), axis=1), spec.target_shape)
    return {
        "kspace": kspace,
        "mask": mask.astype(np.float32),
        "image_label": target.astype(np.float32),
        "image_input": zero_filled.astype(np.float32),
    }


def _write_file(split_dir: Path, name: str, arrays: dict[str, np.ndarray]) -> None:
    with h5py.File(split_dir / "kspace" / name, "w") as f:
        f.create_dataset("kspace", data=arrays["kspace"])
        f.create_dataset("mask", data=arrays["mask"])
    with h5py.File(split_dir / "image" / name, "w") as f:
        f.create_dataset("image_label", data=arrays["image_label"])
        f.create_dataset("image_input", data=arrays["image_input"])
        f.attrs["max"] = float(arrays["image_label"].max())


def _write_all(root: Path, spec: DemoSpec) -> None:
    counts = {"train": spec.train_files_per_category, "val": spec.val_files_per_category}
    for split_idx, split in enumerate(_SPLITS):
        for sub in ("kspace", "image"):
            (root / split / sub).mkdir(parents=True)
        first = 1 if split == "train" else spec.train_files_per_category + 1
        for organ_idx, organ in enumerate(ORGANS):
            for acc in ACCELERATIONS:
                for number in range(first, first + counts[split]):
                    # One independent stream per file: files do not change when others are added.
                    rng = np.random.default_rng([spec.seed, split_idx, organ_idx, acc, number])
                    arrays = _simulate_file(rng, spec, organ, acc)
                    _write_file(root / split, f"{organ}_acc{acc}_{number}.h5", arrays)
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
