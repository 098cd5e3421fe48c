"""fastMRI column-mask families over the phase-encode axis, and mask statistics.

Every mask is a 1-D bool array of length W (number of k-space columns). The families follow
fastMRI's definitions (docs/masks.md) but draw their offsets / random columns from
``numpy.random.default_rng(seed)``, so the same seed gives the same mask here, not the same mask
as fastMRI's own ``MaskFunc`` with that seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MASK_KINDS = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")


def _require_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def make_mask(
    kind: str, num_cols: int, acceleration: int, center_fraction: float, seed: int
) -> np.ndarray:
    """Sample a fastMRI-style column mask: bool array of shape (num_cols,)."""
    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")
    num_cols = _require_int("num_cols", num_cols, 2)
    acceleration = _require_int("acceleration", acceleration, 1)
    seed = _require_int("seed", seed, 0)
    if isinstance(center_fraction, bool) or not isinstance(center_fraction, (int, float)):
        raise ValueError(f"center_fraction must be a number, got {center_fraction!r}")
    if not 0.0 <= center_fraction < 1.0:
        raise ValueError(f"center_fraction must be in [0, 1), got {center_fraction}")

    rng = np.random.default_rng(seed)
    num_low = round(num_cols * center_fraction)
    if kind == "random":
        outer = _random_columns(rng, num_cols, acceleration, num_low)
    elif kind == "equispaced":
        outer = np.zeros(num_cols, dtype=bool)
        outer[int(rng.integers(acceleration)) :: acceleration] = True
    elif kind == "equispaced_fraction":
        outer = _equispaced_fraction_columns(rng, num_cols, acceleration, num_low)
    elif kind == "magic":
        outer = _magic_columns(num_cols, acceleration, int(rng.integers(acceleration)))
    else:
        num_low, outer = _magic_fraction_columns(rng, num_cols, acceleration, num_low)
    return outer | center_mask(num_cols, num_low)


def center_mask(num_cols: int, num_low: int) -> np.ndarray:
    """fastMRI's fully sampled centre block of ``num_low`` columns: bool (num_cols,)."""
    mask = np.zeros(num_cols, dtype=bool)
    start = (num_cols - num_low + 1) // 2
    mask[start : start + num_low] = True
    return mask


def _random_columns(
    rng: np.random.Generator, num_cols: int, acceleration: int, num_low: int
) -> np.ndarray:
    # Chosen so that the expected total (centre included) is num_cols / acceleration.
    if num_low >= num_cols:
        return np.zeros(num_cols, dtype=bool)
    prob = (num_cols / acceleration - num_low) / (num_cols - num_low)
    return rng.uniform(size=num_cols) < prob


def _equispaced_fraction_columns(
    rng: np.random.Generator, num_cols: int, acceleration: int, num_low: int
) -> np.ndarray:
    mask = np.zeros(num_cols, dtype=bool)
    if num_low * acceleration >= num_cols:
        return mask  # the centre alone already reaches the target density
    spacing = acceleration * (num_low - num_cols) / (num_low * acceleration - num_cols)
    offset = int(rng.integers(max(round(spacing), 1)))
    # np.around (half to even) as in fastMRI, so the picked columns agree with it.
    columns = np.around(np.arange(offset, num_cols - 1, spacing)).astype(np.int64)
    mask[columns] = True
    return mask


def _magic_columns(num_cols: int, acceleration: int, offset: int) -> np.ndarray:
    # Offsets of the two half-planes differ so that, with conjugate symmetry, the negative half
    # fills in columns the positive half skipped (Defazio 2019).
    if offset % 2 == 0:
        start_pos, start_neg = offset + 1, offset + 2
    else:
        start_pos, start_neg = offset + 2, offset - 1
    positive = np.zeros((num_cols + 1) // 2, dtype=bool)
    negative = np.zeros(num_cols // 2, dtype=bool)
    positive[start_pos::acceleration] = True
    negative[start_neg::acceleration] = True
    return np.fft.fftshift(np.concatenate([positive, negative[::-1]]))


def _magic_fraction_columns(
    rng: np.random.Generator, num_cols: int, acceleration: int, num_low: int
) -> tuple[int, np.ndarray]:
    target = round(num_cols / acceleration)
    num_low = max(min(num_low, target), 1)
    if target - num_low <= 0:
        return num_low, np.zeros(num_cols, dtype=bool)
    spacing = round(num_cols / (target - num_low))
    return num_low, _magic_columns(num_cols, spacing, int(rng.integers(spacing)))


def _as_1d_bool(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    flat = np.squeeze(np.asarray(mask))
    if flat.ndim != 1:
        raise ValueError(f"mask must be 1-D after squeezing, got shape {np.shape(mask)}")
    return flat.astype(bool)


def mask_acceleration(mask: np.ndarray | torch.Tensor) -> float:
    """Effective acceleration W / (number of sampled columns) of a column mask."""
    flat = _as_1d_bool(mask)
    sampled = int(flat.sum())
    if sampled == 0:
        raise ValueError("mask samples no column; its acceleration is undefined")
    return flat.size / sampled


def center_run(mask: np.ndarray | torch.Tensor) -> tuple[int, int]:
    """(start, length) of the contiguous sampled run containing column W // 2.

    Length 0 (start W // 2) when the centre column itself is not sampled.
    """
    flat = _as_1d_bool(mask)
    middle = flat.size // 2
    if not flat[middle]:
        return middle, 0
    start = middle
    while start > 0 and flat[start - 1]:
        start -= 1
    stop = middle + 1
    while stop < flat.size and flat[stop]:
        stop += 1
    return start, stop - start


def nominal_acceleration(mask: np.ndarray | torch.Tensor, candidates: tuple[int, ...]) -> int:
    """The candidate most consistent with ``mask`` as a fastMRI mask of that nominal acceleration.

    Every fastMRI family's nominal rate R lies between the actual rate W / sampled (lowered by the
    centre block for equispaced and magic masks: R 8 with an 8 % centre at W 396 gives 5.1) and
    the column spacing outside the centre run (raised by it for the random and fraction families).
    The candidate inside that interval wins; otherwise the one nearest to it in log ratio.
    """
    if not candidates:
        raise ValueError("candidates must name at least one acceleration")
    flat = _as_1d_bool(mask)
    low = mask_acceleration(flat)
    _, run_length = center_run(flat)
    outer_sampled = int(flat.sum()) - run_length
    high = (flat.size - run_length) / outer_sampled if outer_sampled else math.inf
    log_low, log_high = math.log(low), math.log(high)

    def mismatch(r: int) -> tuple[float, float]:
        log_r = math.log(r)
        return max(log_low - log_r, log_r - log_high, 0.0), abs((log_low + log_high) / 2 - log_r)

    return min(candidates, key=mismatch)
