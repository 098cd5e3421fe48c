"""Array helpers shared by the readers, the simulator and the augmenter: centred FFTs, RSS, crops and pads.

The centred FFTs and RSS take NumPy arrays (NumPy maths) or complex torch tensors (torch maths on
the tensor's device and dtype). Crops and pads act on the last two axes of either and use the same
centre convention (start = (size - target) // 2), so ``center_crop(crop_or_pad(x, s), x.shape)``
returns ``x`` when ``s`` is larger than ``x``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def fft2c(image: ArrayT) -> ArrayT:
    """Centred orthonormal 2-D FFT over the last two axes (complex in, complex out)."""
    if isinstance(image, torch.Tensor):
        return fftc(image, (-2, -1))
    shifted = np.fft.ifftshift(image, axes=(-2, -1))
    return np.fft.fftshift(np.fft.fft2(shifted, norm="ortho"), axes=(-2, -1))


def ifft2c(kspace: ArrayT) -> ArrayT:
    """Inverse of :func:`fft2c` over the last two axes."""
    if isinstance(kspace, torch.Tensor):
        return fftc(kspace, (-2, -1), inverse=True)
    shifted = np.fft.ifftshift(kspace, axes=(-2, -1))
    return np.fft.fftshift(np.fft.ifft2(shifted, norm="ortho"), axes=(-2, -1))


def fftc(x: torch.Tensor, dims: Sequence[int], inverse: bool = False, out: torch.Tensor | None = None,
         overwrite_x: bool = False) -> torch.Tensor:
    """Centred orthonormal FFT of a tensor over ``dims`` (``inverse``: its inverse); same shape, complex.

    Equals fftshift(fft(ifftshift(x))) over ``dims`` (``inverse``: with ifft), on x's device; written
    into ``out`` when given (a contiguous tensor of x's shape and complex dtype, e.g. a slice along a
    leading axis of a larger one). With ``overwrite_x`` a complex ``x`` may be used as scratch space.
    For even lengths both shifts are rolls by n / 2, which the FFT turns into multiplying its input and
    its output by (-1)^index: two elementwise passes instead of moving the data twice.
    """
    dims = tuple(dim % x.ndim - x.ndim for dim in dims)
    transform = torch.fft.ifftn if inverse else torch.fft.fftn
    sizes = tuple(x.shape[dim] for dim in dims)
    if any(n % 2 for n in sizes):
        result = torch.fft.fftshift(transform(torch.fft.ifftshift(x, dims), dim=dims, norm="ortho"), dims)
        return result if out is None else out.copy_(result)
    signed = _times_signs(x, sizes, dims, flip=False, inplace=overwrite_x and x.is_complex())
    spectrum = transform(signed, dim=dims, norm="ortho")
    # The two shifts also contribute the constant (-1)^(n / 2) per axis, folded into the output's signs.
    return _times_signs(spectrum, sizes, dims, flip=sum(n // 2 for n in sizes) % 2 == 1, out=out)


def _times_signs(x: torch.Tensor, sizes: tuple[int, ...], dims: tuple[int, ...], flip: bool,
                 inplace: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """x times the checkerboard (-1)^(sum of indices over ``dims``) (negated with ``flip``): in place,
    into ``out``, or new.

    Complex tensors are multiplied through their real view: a real sign table against a complex
    tensor would otherwise be promoted to complex and copied first.
    """
    real = torch.view_as_real(x) if x.is_complex() else x
    signs = checkerboard(sizes, dims, flip, x.is_complex(), real.dtype, real.device)
    if out is not None:
        torch.mul(real, signs, out=torch.view_as_real(out) if out.is_complex() else out)
        return out
    result = real.mul_(signs) if inplace else real * signs
    return torch.view_as_complex(result) if x.is_complex() else result


@functools.lru_cache(maxsize=32)
def checkerboard(sizes: tuple[int, ...], dims: tuple[int, ...], flip: bool, pairs: bool, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    """(-1)^(sum of the indices over ``dims``), negated with ``flip``, shaped to broadcast over those dims;
    with ``pairs`` each sign twice along a new last axis, for the (re, im) view of a complex tensor.

    Multiplying by it before and after an FFT of even lengths centres the FFT (see :func:`fftc`).

    Materialised and cached: a contiguous table keeps the multiply a plain vectorised loop, and a data
    set has few slice shapes.
    """
    table = -torch.ones((), dtype=dtype, device=device) if flip else torch.ones((), dtype=dtype, device=device)
    for n, dim in zip(sizes, dims):
        sign = 1 - 2 * (torch.arange(n, device=device) % 2).to(dtype)
        table = table * sign.reshape((n,) + (1,) * (-1 - dim))
    if pairs:
        table = table.unsqueeze(-1).expand(*table.shape, 2)
    return table.contiguous()


def rss(coil_images: ArrayT, axis: int = 0) -> ArrayT:
    """Root-sum-of-squares magnitude over the coil axis."""
    if isinstance(coil_images, torch.Tensor):
        return coil_images.abs().square().sum(dim=axis).sqrt()
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
