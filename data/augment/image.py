"""MRAugment-style image-domain augmentation of one multi-coil slice, in torch on the data's device.

The fully sampled k-space (C, H, W) goes to coil images, every coil gets the same geometric
transform, the k-space is recomputed from the transformed coils, and so are the target and its
SSIM data range. Row/column coordinates throughout: axis -2 is H (rows), axis -1 is W (columns).
The transform is drawn on the CPU with NumPy (:func:`draw_image_transform`, in data loader
workers); applying it (:func:`transform_images`, :func:`augment_slice`) runs on whatever device
the tensors are on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..transforms import center_crop, checkerboard, fftc, ifft2c
from .config import MRAugmentConfig

# On the CPU, augment_slice transforms a few coils at a time: a full-slice temporary (tens of MB) is
# a fresh mmap whose page faults cost about as much as the FFT that fills it, while chunks of a few
# MiB are reused from the heap and stay in cache between the steps (measured fastest at 2 coils of
# 768 x 396). Other devices take the whole slice at once.
_CPU_CHUNK_BYTES = 6 << 20
# A normalised grid coordinate this far out has all four bilinear neighbours in the zero padding.
_OUTSIDE = -4.0


class ImageTransform(NamedTuple):
    """One draw of the geometric transform; neutral values mean "not applied"."""

    flip_h: bool = False  # mirror the columns (left-right)
    flip_v: bool = False  # mirror the rows (up-down)
    rotation_deg: float = 0.0  # counter-clockwise as displayed (rows down), like np.rot90
    scale: float = 1.0  # > 1 magnifies
    translation: tuple[float, float] = (0.0, 0.0)  # (rows, columns) in pixels
    shear_deg: tuple[float, float] = (0.0, 0.0)  # (along rows, along columns)

    @property
    def is_affine(self) -> bool:
        """Whether anything but flips is applied (which needs interpolation)."""
        return (self.rotation_deg, self.scale, self.translation, self.shear_deg) != (0.0, 1.0, (0.0, 0.0), (0.0, 0.0))

    @property
    def is_identity(self) -> bool:
        """Whether the transform leaves images unchanged."""
        return not (self.flip_h or self.flip_v or self.is_affine)

    def to_vector(self) -> np.ndarray:
        """The transform as 8 float64 numbers, all zero for the identity (how a sample carries it)."""
        return np.array([float(self.flip_h), float(self.flip_v), self.rotation_deg, self.scale - 1.0,
                         *self.translation, *self.shear_deg], dtype=np.float64)

    @classmethod
    def from_vector(cls, vector: Sequence[float]) -> ImageTransform:
        """The inverse of :meth:`to_vector` (float64 both ways: exact but for one rounding of the scale)."""
        flip_h, flip_v, rotation, scale_change, shift_rows, shift_cols, shear_rows, shear_cols = (
            float(v) for v in vector)
        return cls(flip_h=flip_h != 0, flip_v=flip_v != 0, rotation_deg=rotation, scale=1.0 + scale_change,
                   translation=(shift_rows, shift_cols), shear_deg=(shear_rows, shear_cols))


def draw_image_transform(
    config: MRAugmentConfig, rng: np.random.Generator, shape: tuple[int, int]
) -> ImageTransform:
    """Draw each transform with its weight and its parameter from its range, for images of ``shape``.

    The number of random draws is fixed (coin and parameter for every transform, applied or not),
    so changing one weight does not change the other transforms' parameters for the same seed.
    """

    def coin(weight: float) -> bool:
        return bool(rng.uniform() < weight)

    flip_h, flip_v = coin(config.flip_h), coin(config.flip_v)
    rotate, angle = coin(config.rotation), rng.uniform(-1.0, 1.0) * config.max_rotation_deg
    scale_it, scale = coin(config.scaling), 1.0 + rng.uniform(-1.0, 1.0) * config.max_scaling
    shift_it, shift = coin(config.translation), rng.uniform(-1.0, 1.0, 2) * config.max_translation * np.array(shape)
    shear_it, shear = coin(config.shear), rng.uniform(-1.0, 1.0, 2) * config.max_shear_deg
    return ImageTransform(
        flip_h=flip_h,
        flip_v=flip_v,
        rotation_deg=float(angle) if rotate else 0.0,
        scale=float(scale) if scale_it else 1.0,
        translation=(float(shift[0]), float(shift[1])) if shift_it else (0.0, 0.0),
        shear_deg=(float(shear[0]), float(shear[1])) if shear_it else (0.0, 0.0),
    )


def _inverse_affine(transform: ImageTransform, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) mapping output pixel coordinates to input ones, about the image centre."""
    theta = math.radians(transform.rotation_deg)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    along_rows, along_cols = (math.tan(math.radians(a)) for a in transform.shear_deg)
    # A product of two unit-triangular shears has determinant 1, so shear never collapses the image.
    shear = np.array([[1.0, along_rows], [0.0, 1.0]]) @ np.array([[1.0, 0.0], [along_cols, 1.0]])
    forward = rotation @ shear * transform.scale
    center = (np.array(shape, dtype=np.float64) - 1) / 2
    matrix = np.linalg.inv(forward)
    return matrix, center - matrix @ (center + np.array(transform.translation))


def _sampling_grid(
    transform: ImageTransform, shape: tuple[int, int], padding: str, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``grid_sample`` grid (1, H, W, 2) of the flips followed by the affine part of ``transform``.

    grid_sample's (x, y) are (column, row) normalised for ``align_corners=False``: (2 p + 1) / size - 1
    for pixel coordinate p, where its padding "reflection" is scipy's half-sample symmetric "reflect".
    Flipping first and then sampling equals sampling at mirrored points, p -> size - 1 - p, which
    negates the normalised coordinate. Each coordinate is affine in (row, column), so it is the sum
    of a column vector and a row vector, computed in float64 like scipy's.
    """
    height, width = shape
    matrix, offset = _inverse_affine(transform, shape)
    matrix, offset = matrix.tolist(), offset.tolist()
    rows = torch.arange(height, dtype=torch.float64, device=device)[:, None]
    cols = torch.arange(width, dtype=torch.float64, device=device)[None, :]
    grid = torch.empty((1, height, width, 2), dtype=dtype, device=device)
    for channel, (axis, size, flip) in enumerate(((1, width, transform.flip_h), (0, height, transform.flip_v))):
        scale = (-2.0 if flip else 2.0) / size
        along_rows = scale * matrix[axis][0] * rows + (scale * (offset[axis] + 0.5) - scale * size / 2)
        torch.add(along_rows, scale * matrix[axis][1] * cols, out=grid[0, ..., channel])
    if padding != "reflect":
        # scipy's "constant" mode does not interpolate towards the padding: a sample point outside
        # [0, size - 1] is 0. Sending such points far out makes "zeros" padding do the same; the
        # pixel coordinates are computed in scipy's order so that points on the edge agree.
        source_rows = matrix[0][0] * rows + matrix[0][1] * cols + offset[0]
        source_cols = matrix[1][0] * rows + matrix[1][1] * cols + offset[1]
        inside = (source_rows >= 0) & (source_rows <= height - 1) & (source_cols >= 0) & (source_cols <= width - 1)
        grid.masked_fill_(~inside[None, ..., None], _OUTSIDE)
    return grid


def _moved(planes: torch.Tensor, transform: ImageTransform, grid: torch.Tensor | None, padding: str) -> torch.Tensor:
    """Real and imaginary planes (N, 2, H, W) of images under ``transform``: flipped, or resampled at ``grid``.

    Bilinear interpolation is linear, so interpolating the two planes is interpolating the complex
    signal, which keeps coil phases consistent (interpolating magnitude and phase would smear phase
    wraps).
    """
    if grid is None:
        dims = [dim for dim, flip in ((-1, transform.flip_h), (-2, transform.flip_v)) if flip]
        return torch.flip(planes, dims) if dims else planes
    mode = "reflection" if padding == "reflect" else "zeros"
    return F.grid_sample(planes, grid.expand(planes.shape[0], -1, -1, -1), mode="bilinear", padding_mode=mode,
                         align_corners=False)


def transform_images(images: torch.Tensor, transform: ImageTransform, padding: str = "reflect") -> torch.Tensor:
    """Apply ``transform`` to every image of a (..., H, W) complex stack; returns the same shape and dtype.

    Flips are exact (``torch.flip``). The affine part resamples the real and imaginary parts with
    bilinear interpolation (``grid_sample``), with the geometry of scipy's ``affine_transform``
    given the matrix of :func:`_inverse_affine`. ``padding`` "reflect" mirrors the image at its
    border (d c b a | a b c d), "zero" fills with zeros. The identity returns ``images`` itself.
    """
    if transform.is_identity:
        return images
    images = images.to(torch.promote_types(images.dtype, torch.complex64))
    shape = tuple(images.shape[-2:])
    grid = _sampling_grid(transform, shape, padding, images.real.dtype, images.device) if transform.is_affine else None
    planes = _moved(torch.view_as_real(images.reshape(-1, *shape)).permute(0, 3, 1, 2), transform, grid, padding)
    return torch.complex(planes[:, 0], planes[:, 1]).reshape(images.shape)


def augment_slice(
    kspace: torch.Tensor,
    target: torch.Tensor,
    max_value: torch.Tensor | float,
    transform: ImageTransform,
    padding: str = "reflect",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Transform a fully sampled slice: kspace (C, H, W) complex, target (h, w) real.

    Returns (kspace (C, H, W) complex64, target (h, w) float32, max_value 0-d), all on the k-space's
    device; max_value keeps its dtype when it is a floating-point tensor and is float64 otherwise.
    The new target is the centre crop of the RSS of the transformed coil images. The SSIM data range
    ``max_value`` is a per-volume constant (the file's max) and usually exceeds this slice's own
    maximum; to keep that ratio, it is scaled by how much the transform changed this slice's
    RSS-crop maximum (flips leave it as is, interpolation lowers peaks a little, a shift can bring
    brighter tissue into the crop), and left as it is when that maximum was 0. Using the new slice
    maximum instead would make the SSIM of augmented slices systematically stricter than that of
    the others.
    """
    crop = tuple(target.shape[-2:])
    coils, height, width = kspace.shape
    real_dtype = torch.promote_types(kspace.dtype, torch.complex64).to_real()
    grid = None
    if transform.is_affine:
        grid = _sampling_grid(transform, (height, width), padding, real_dtype, kspace.device)
    out = torch.empty(kspace.shape, dtype=torch.complex64, device=kspace.device)
    energy_before = torch.zeros(crop, dtype=real_dtype, device=kspace.device)
    energy_after = torch.zeros_like(energy_before)
    step = coils
    if kspace.device.type == "cpu":
        step = max(1, _CPU_CHUNK_BYTES // (height * width * kspace.element_size()))
    for first in range(0, coils, step):
        chunk = slice(first, first + step)
        planes = _coil_image_planes(kspace[chunk])
        energy_before += center_crop(planes, crop).square().sum(dim=(0, 1))
        planes = _moved(planes, transform, grid, padding)
        energy_after += center_crop(planes, crop).square().sum(dim=(0, 1))
        _kspace_from_planes(planes, out[chunk])
    new_target = energy_after.sqrt().to(torch.float32)
    old_max = energy_before.max().sqrt().to(torch.float64)
    floating = isinstance(max_value, torch.Tensor) and max_value.is_floating_point()
    dtype = max_value.dtype if floating else torch.float64
    max_value = torch.as_tensor(max_value, dtype=torch.float64, device=kspace.device)
    # (max * new) / old in float64 as before; torch.where instead of an if keeps it free of host syncs.
    scaled = max_value * new_target.max().to(torch.float64) / old_max
    return out, new_target, torch.where(old_max > 0, scaled, max_value).to(dtype)


def _coil_image_planes(kspace: torch.Tensor) -> torch.Tensor:
    """Coil images of k-space (N, H, W) complex as (N, 2, H, W) real and imaginary planes, contiguous.

    For even H and W the centring is two sign tables around the FFT (``data.transforms.fftc``), and
    the second one is applied in the same pass that separates the planes. That leaves out the
    constant (-1)^((H + W) / 2), which :func:`_kspace_from_planes` leaves out too: the two cancel.
    """
    height, width = kspace.shape[-2:]
    if height % 2 or width % 2:
        return torch.view_as_real(ifft2c(kspace)).permute(0, 3, 1, 2).contiguous()
    real = torch.view_as_real(kspace)
    pairs = checkerboard((height, width), (-2, -1), False, True, real.dtype, real.device)
    spectrum = torch.fft.ifft2(torch.view_as_complex(real * pairs), norm="ortho")
    signs = checkerboard((height, width), (-2, -1), False, False, real.dtype, real.device)
    planes = torch.empty((kspace.shape[0], 2, height, width), dtype=real.dtype, device=real.device)
    return torch.mul(torch.view_as_real(spectrum).permute(0, 3, 1, 2), signs, out=planes)


def _kspace_from_planes(planes: torch.Tensor, out: torch.Tensor) -> None:
    """Write the centred FFT of the images (N, 2, H, W) planes into ``out`` (N, H, W) complex (see above)."""
    height, width = planes.shape[-2:]
    if height % 2 or width % 2:
        fftc(torch.complex(planes[:, 0], planes[:, 1]), (-2, -1), out=out, overwrite_x=True)
        return
    pairs = checkerboard((height, width), (-2, -1), False, True, planes.dtype, planes.device)
    signed = torch.empty(out.shape, dtype=planes.dtype.to_complex(), device=out.device)
    torch.mul(planes.permute(0, 2, 3, 1), pairs, out=torch.view_as_real(signed))
    torch.mul(torch.view_as_real(torch.fft.fft2(signed, norm="ortho")), pairs, out=torch.view_as_real(out))
