"""Test-only oracle: the NumPy/SciPy augmentation and coil compression that the torch code replaced.

Kept unchanged in behaviour (NumPy arrays in and out) so that the torch versions in ``data.augment``
can be compared against it (``tests/test_augment_torch_equivalence.py``) and timed against it
(``benchmarks/augment_speed.py``). The transform draw is shared: ``ImageTransform`` comes from
``data.augment.image``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from data.augment.config import COMPRESSION_METHODS
from data.augment.image import ImageTransform
from data.transforms import center_crop, fft2c, ifft2c, rss


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


def _ifftc_rows(kspace: np.ndarray) -> np.ndarray:
    shifted = np.fft.ifftshift(kspace, axes=-2)
    return np.fft.fftshift(np.fft.ifft(shifted, axis=-2, norm="ortho"), axes=-2)


def _fftc_rows(hybrid: np.ndarray) -> np.ndarray:
    shifted = np.fft.ifftshift(hybrid, axes=-2)
    return np.fft.fftshift(np.fft.fft(shifted, axis=-2, norm="ortho"), axes=-2)


def crop_readout(kspace: np.ndarray, height: int, start: int | None = None) -> np.ndarray:
    """k-space (..., height, W) of the image rows [start, start + height) of ``kspace`` (..., H, W).

    ``start`` defaults to the centre crop's (H - height) // 2, the convention of
    ``transforms.center_crop``. Only the readout axis is transformed (the column FFTs cancel), so
    this equals fft2c(image[..., start:start + height, :]) with image = ifft2c(kspace).
    """
    rows = kspace.shape[-2]
    if not 1 <= height <= rows:
        raise ValueError(f"height: expected 1..{rows} rows, got {height}")
    start = (rows - height) // 2 if start is None else start
    if not 0 <= start <= rows - height:
        raise ValueError(f"start: expected 0..{rows - height} for {height} of {rows} rows, got {start}")
    cropped = _ifftc_rows(kspace)[..., start : start + height, :]
    return _fftc_rows(cropped).astype(kspace.dtype, copy=False)


def _calibration_columns(array: np.ndarray, columns: np.ndarray | None) -> np.ndarray:
    if columns is None:
        return array
    columns = np.asarray(columns, dtype=bool).reshape(-1)
    if columns.shape != (array.shape[-1],) or not columns.any():
        raise ValueError(f"columns: expected a non-empty bool mask of {array.shape[-1]} columns, got {columns.shape}")
    return array[..., columns]


def _leading_basis(covariance: np.ndarray, num_virtual: int) -> np.ndarray:
    # eigh sorts eigenvalues ascending; the compression rows are the leading eigenvectors, conjugated.
    _, vectors = np.linalg.eigh(covariance)
    return np.conj(np.swapaxes(vectors[..., ::-1][..., :num_virtual], -1, -2))


def scc_matrix(kspace: np.ndarray, num_virtual: int, columns: np.ndarray | None = None) -> np.ndarray:
    """Single coil compression (Huang et al. 2008): one matrix (num_virtual, C) for the whole slice.

    Its rows are the leading left singular vectors of the coil data (C, samples) of the columns
    marked in ``columns`` (W,) (all columns if None), i.e. the principal components across coils.
    """
    num_virtual = _check_virtual(kspace, num_virtual)
    data = _calibration_columns(kspace, columns).reshape(kspace.shape[0], -1)
    # The covariance in the data's precision is accurate enough: eigh returns orthonormal vectors anyway.
    return _leading_basis((data @ data.conj().T).astype(np.complex128), num_virtual)


def gcc_matrices(
    kspace: np.ndarray, num_virtual: int, columns: np.ndarray | None = None, window: int = 5
) -> np.ndarray:
    """Geometric coil compression (Zhang et al. 2013): one matrix (num_virtual, C) per readout row.

    After an inverse FFT along the fully sampled readout axis H, each image row x has its own
    principal components across coils, estimated from the calibration columns of the ``window``
    rows around x. Neighbouring matrices are then aligned, outwards from the centre row, by the
    unitary P minimising ||P A_x - A_(x-1)|| (orthogonal Procrustes: P = V U^H from the SVD
    A_x A_(x-1)^H = U S V^H), so the virtual coils vary smoothly along x and look like physical
    coils. Returns (H, num_virtual, C).
    """
    num_virtual = _check_virtual(kspace, num_virtual)
    return _gcc_from_rows(_natural_rows(kspace), num_virtual, columns, window)


def _natural_rows(kspace: np.ndarray) -> np.ndarray:
    """Uncentred inverse FFT along H, rows as (H, C, W).

    Against the centred transform its rows are rolled by H // 2 (``ifftshift`` of the centred order)
    and each multiplied by a unit phase common to all coils and columns. Per-row coil mixing commutes
    with that phase and the uncentred forward FFT removes it, so GCC can skip four full-size shifts.
    """
    return np.swapaxes(np.fft.ifft(kspace, axis=-2, norm="ortho"), 0, 1)


def _gcc_from_rows(
    rows: np.ndarray, num_virtual: int, columns: np.ndarray | None, window: int
) -> np.ndarray:
    """Aligned GCC matrices (H, num_virtual, C), centred row order, from :func:`_natural_rows` output."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window: expected an integer >= 1, got {window!r}")
    calibration = _calibration_columns(rows, columns)  # (H, C, samples)
    covariance = (calibration @ np.conj(np.swapaxes(calibration, -1, -2))).astype(np.complex128)
    covariance = np.fft.fftshift(covariance, axes=0)  # the row phases cancel in a covariance
    # Sum over a window of rows via cumulative sums, clipped at both ends.
    cumulative = np.concatenate([np.zeros_like(covariance[:1]), np.cumsum(covariance, axis=0)])
    height = covariance.shape[0]
    low = np.clip(np.arange(height) - window // 2, 0, height)
    high = np.clip(np.arange(height) + window - window // 2, 0, height)
    matrices = _leading_basis(cumulative[high] - cumulative[low], num_virtual)
    middle = height // 2
    for x in range(middle + 1, height):
        matrices[x] = _aligned(matrices[x], matrices[x - 1])
    for x in range(middle - 1, -1, -1):
        matrices[x] = _aligned(matrices[x], matrices[x + 1])
    return matrices


def _aligned(matrix: np.ndarray, reference: np.ndarray) -> np.ndarray:
    u, _, vh = np.linalg.svd(matrix @ reference.conj().T)
    return (vh.conj().T @ u.conj().T) @ matrix


def _check_virtual(kspace: np.ndarray, num_virtual: int) -> int:
    if kspace.ndim != 3:
        raise ValueError(f"kspace: expected (coils, H, W), got shape {kspace.shape}")
    if isinstance(num_virtual, bool) or not isinstance(num_virtual, int) or not 1 <= num_virtual <= kspace.shape[0]:
        raise ValueError(f"num_virtual: expected an integer in 1..{kspace.shape[0]}, got {num_virtual!r}")
    return num_virtual


def compress_coils(
    kspace: np.ndarray,
    method: str,
    num_virtual: int,
    columns: np.ndarray | None = None,
    window: int = 5,
) -> np.ndarray:
    """Compress kspace (C, H, W) to (num_virtual, H, W) with ``method`` "scc" or "gcc" ("none": as is).

    ``columns`` (W,) bool selects the calibration columns (pass the mask: test data has no others).
    With num_virtual = C the transform is unitary, so the k-space energy and the RSS image are kept.
    """
    if method not in COMPRESSION_METHODS:
        raise ValueError(f"method: expected one of {list(COMPRESSION_METHODS)}, got {method!r}")
    if method == "none":
        return kspace
    dtype = np.result_type(kspace.dtype, np.complex64)
    if method == "scc":
        matrix = scc_matrix(kspace, num_virtual, columns).astype(dtype)
        return np.tensordot(matrix, kspace, axes=(1, 0))
    rows = _natural_rows(kspace)
    matrices = _gcc_from_rows(rows, _check_virtual(kspace, num_virtual), columns, window)
    natural = np.fft.ifftshift(matrices, axes=0).astype(dtype)
    compressed = np.swapaxes(natural @ rows, 0, 1)  # (num_virtual, H, W)
    return np.fft.fft(compressed, axis=-2, norm="ortho").astype(dtype, copy=False)
