"""Mask augmentation: drawing fastMRI-family masks, and the check that makes augmentation valid.

Replacing a slice's mask is only meaningful when its k-space holds every column the new mask may
sample, i.e. when it is fully sampled (the challenge's train/val sets are; its leaderboard and
fastMRI's test sets are not). MRAugment needs the same: it transforms unaliased coil images.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataFormatError
from ..masks import make_mask
from .config import MaskAugmentConfig


def unsampled_columns(kspace: np.ndarray) -> np.ndarray:
    """Indices of the phase-encode columns of (..., H, W) that are exactly zero in every coil and row.

    Zero columns in a run that reaches either edge are zero-padding, not undersampling (fastMRI pads
    knee k-space out to its width; its header names the acquired range), so they are not counted: a
    new mask may sample them, and what it reads there, zeros, is the truth.
    """
    measured = np.any(kspace.reshape(-1, kspace.shape[-1]) != 0, axis=0)
    if not measured.any():
        return np.arange(measured.size)
    first, last = np.flatnonzero(measured)[[0, -1]]
    return first + np.flatnonzero(~measured[first:last + 1])


def is_fully_sampled(kspace: np.ndarray) -> bool:
    """True when no phase-encode column of ``kspace`` (..., H, W) is all zero, edge padding aside."""
    return unsampled_columns(kspace).size == 0


def require_fully_sampled(kspace: np.ndarray, what: str) -> None:
    """Raise :class:`DataFormatError` naming ``what`` unless ``kspace`` (..., H, W) is fully sampled."""
    missing = unsampled_columns(kspace)
    if missing.size:
        raise DataFormatError(
            f"{what}: needs fully sampled k-space, but {missing.size} of {kspace.shape[-1]} phase-encode "
            f"columns are all zero (first {missing[:8].tolist()}): a new mask cannot sample columns that "
            "were never measured, and image-domain transforms of aliased coil images are meaningless. "
            "Turn mask augmentation, duplication and MRAugment off for this data."
        )


def draw_family_mask(
    config: MaskAugmentConfig, num_cols: int, acceleration: int, rng: np.random.Generator
) -> np.ndarray:
    """A mask (num_cols,) bool of a family drawn from ``config.kinds`` at ``acceleration``."""
    weights = np.asarray(config.weights or [1.0] * len(config.kinds), dtype=np.float64)
    kind = config.kinds[int(rng.choice(len(config.kinds), p=weights / weights.sum()))]
    center_fraction = float(rng.uniform(*config.center_fraction))
    return make_mask(kind, num_cols, acceleration, center_fraction, int(rng.integers(2**31)))
