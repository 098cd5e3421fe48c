"""Array helpers shared by the readers and the simulator: centred FFTs, RSS, crops and pads.

Crops and pads act on the last two axes of NumPy arrays or torch tensors alike and use the same
centre convention (start = (size - target) // 2), so ``center_crop(crop_or_pad(x, s), x.shape)``
returns ``x`` when ``s`` is larger than ``x``.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def fft2c(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D FFT over the last two axes (complex in, complex out)."""
    shifted = np.fft.ifftshift(image, axes=(-2, -1))
    return np.fft.fftshift(np.fft.fft2(shifted, norm="ortho"), axes=(-2, -1))


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fft2c` over the last two axes."""
    shifted = np.fft.ifftshift(kspace, axes=(-2, -1))
    return np.fft.fftshift(np.fft.ifft2(shifted, norm="ortho"), axes=(-2, -1))


def rss(coil_images: np.ndarray, axis: int = 0) -> np.ndarray:
    """Root-sum-of-squares magnitude over the coil axis."""
    return np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=axis))


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) != 2 or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(f"shape must be two positive integers, got {shape!r}")
    return int(shape[0]), int(shape[1])


def center_crop(x: ArrayT, shape: tuple[int, int]) -> ArrayT:
    """Centre crop of the last two axes of ``x`` (..., H, W) to ``shape`` (h, w), h <= H, w <= W."""
    h, w = _check_shape(tuple(shape))
    height, width = x.shape[-2], x.shape[-1]
    if h > height or w > width:
        raise ValueError(f"cannot crop size {(height, width)} to larger {(h, w)}")
    top, left = (height - h) // 2, (width - w) // 2
    return x[..., top : top + h, left : left + w]


def crop_or_pad(x: ArrayT, shape: tuple[int, int]) -> ArrayT:
    """Bring the last two axes of ``x`` to ``shape``: centre crop where larger, zero-pad where smaller."""
    h, w = _check_shape(tuple(shape))
    height, width = x.shape[-2], x.shape[-1]
    x = center_crop(x, (min(h, height), min(w, width)))
    pad_h, pad_w = max(h - height, 0), max(w - width, 0)
    if pad_h == 0 and pad_w == 0:
        return x
    before_h, before_w = pad_h // 2, pad_w // 2
    if isinstance(x, torch.Tensor):
        return torch.nn.functional.pad(
            x, (before_w, pad_w - before_w, before_h, pad_h - before_h)
        )
    widths = [(0, 0)] * (x.ndim - 2) + [(before_h, pad_h - before_h), (before_w, pad_w - before_w)]
    return np.pad(x, widths)
