"""MRAugment-style image-domain augmentation of one multi-coil slice.

The fully sampled k-space (C, H, W) goes to coil images, every coil gets the same geometric
transform, the k-space is recomputed from the transformed coils, and so are the target and its
SSIM data range. Row/column coordinates throughout: axis -2 is H (rows), axis -1 is W (columns).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..transforms import center_crop, fft2c, ifft2c, rss
from .config import MRAugmentConfig


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
    """scipy's (matrix, offset) mapping output pixel coordinates to input ones, about the image centre."""
    theta = math.radians(transform.rotation_deg)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    along_rows, along_cols = (math.tan(math.radians(a)) for a in transform.shear_deg)
    # A product of two unit-triangular shears has determinant 1, so shear never collapses the image.
    shear = np.array([[1.0, along_rows], [0.0, 1.0]]) @ np.array([[1.0, 0.0], [along_cols, 1.0]])
    forward = rotation @ shear * transform.scale
    center = (np.array(shape, dtype=np.float64) - 1) / 2
    matrix = np.linalg.inv(forward)
    return matrix, center - matrix @ (center + np.array(transform.translation))


def transform_images(images: np.ndarray, transform: ImageTransform, padding: str = "reflect") -> np.ndarray:
    """Apply ``transform`` to every image of a (..., H, W) complex stack; returns the same shape.

    Flips are exact (np.flip). The affine part resamples each complex image with bilinear
    interpolation (scipy.ndimage.affine_transform), which acts on the real and imaginary parts
    separately: interpolation is linear, so this is the interpolation of the complex signal and
    keeps coil phases consistent, whereas interpolating magnitude and phase would smear phase
    wraps. ``padding`` "reflect" mirrors the image at its border, "zero" fills with zeros.
    """
    if transform.flip_h:
        images = np.flip(images, axis=-1)
    if transform.flip_v:
        images = np.flip(images, axis=-2)
    if not transform.is_affine:
        return np.ascontiguousarray(images)
    shape = images.shape[-2:]
    matrix, offset = _inverse_affine(transform, shape)
    mode = "reflect" if padding == "reflect" else "constant"
    flat = images.reshape(-1, *shape)
    out = np.empty(flat.shape, dtype=np.result_type(images.dtype, np.complex64))
    for i, image in enumerate(flat):
        ndimage.affine_transform(image, matrix, offset, order=1, mode=mode, output=out[i])
    return out.reshape(images.shape)


def augment_slice(
    kspace: np.ndarray,
    target: np.ndarray,
    max_value: float,
    transform: ImageTransform,
    padding: str = "reflect",
) -> tuple[np.ndarray, np.ndarray, float]:
    """Transform a fully sampled slice: kspace (C, H, W) complex, target (h, w) -> the same shapes.

    The new target is the centre crop of the RSS of the transformed coil images. The SSIM data
    range ``max_value`` is a per-volume constant (the file's max) and usually exceeds this slice's
    own maximum; to keep that ratio, it is scaled by how much the transform changed this slice's
    RSS-crop maximum (flips leave it as is, interpolation lowers peaks a little, a shift can bring
    brighter tissue into the crop). Using the new slice maximum instead would make the SSIM of
    augmented slices systematically stricter than that of the others.
    """
    images = ifft2c(kspace)
    augmented = transform_images(images, transform, padding)
    before = float(center_crop(rss(images), target.shape).max())
    new_target = center_crop(rss(augmented), target.shape).astype(np.float32)
    if before > 0:
        max_value = max_value * float(new_target.max()) / before
    return fft2c(augmented).astype(np.complex64, copy=False), new_target, max_value
