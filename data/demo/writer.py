"""Writing the demo dataset: each `DemoSpec` scan simulated and stored in the SNU layout (see `data.demo`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from data.atomic import current_umask
from data.category import ACCELERATIONS, ORGANS
from data.demo.phantoms import brain_slices, knee_slices, smooth_noise
from data.demo.spec import DemoSpec
from data.masks import center_mask
from data.transforms import center_crop, fft2c, ifft2c, rss

SPEC_FILE = "demo_spec.json"
LEADERBOARD_DIR = "leaderboard"
_SPLITS = ("train", "val")
_PHANTOMS = {"brain": brain_slices, "knee": knee_slices}


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
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp creates it private; the user's umask decides
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
