"""Readout field-of-view cropping and coil compression (SCC, GCC) of multi-coil k-space (C, H, W).

H is the fully sampled readout axis, W the phase-encode axis the column mask acts on. All three
operations act on each phase-encode column separately (along H and across coils), so they
commute with the column mask: applying them to masked k-space equals masking their output.

The k-space is a complex torch tensor and the heavy work (FFTs, covariances, applying the
matrices) runs on its device. The compression matrices come from eigendecompositions of tiny
(C, C) covariances and, for GCC, a sequential alignment along H: that part runs on the CPU in
NumPy float64, so the matrices do not depend on the device and match the NumPy reference.

torch's CPU FFT along H of a (C, H, W) tensor first copies it into a transposed layout (its batch
axes C and W cannot be merged into one); a single coil (H, W) needs no such copy, which is why the
FFTs along H loop over coils (three times faster on the CPU, a few more kernel launches on a GPU).
"""

from __future__ import annotations

import numpy as np
import torch

from ..transforms import fftc
from .config import COMPRESSION_METHODS


def crop_readout(kspace: torch.Tensor, height: int, start: int | None = None) -> torch.Tensor:
    """k-space (..., height, W) of the image rows [start, start + height) of ``kspace`` (..., H, W).

    ``start`` defaults to the centre crop's (H - height) // 2, the convention of
    ``transforms.center_crop``. Only the readout axis is transformed (the column FFTs cancel), so
    this equals fft2c(image[..., start:start + height, :]) with image = ifft2c(kspace).
    """
    rows, width = kspace.shape[-2], kspace.shape[-1]
    if not 1 <= height <= rows:
        raise ValueError(f"height: expected 1..{rows} rows, got {height}")
    start = (rows - height) // 2 if start is None else start
    if not 0 <= start <= rows - height:
        raise ValueError(f"start: expected 0..{rows - height} for {height} of {rows} rows, got {start}")
    out = torch.empty((*kspace.shape[:-2], height, width), dtype=kspace.dtype, device=kspace.device)
    for coil, cropped in zip(kspace.reshape(-1, rows, width), out.view(-1, height, width)):
        fftc(fftc(coil, (-2,), inverse=True)[start : start + height], (-2,), out=cropped)
    return out


def _calibration_columns(array: torch.Tensor, columns: torch.Tensor | None) -> torch.Tensor:
    if columns is None:
        return array
    columns = torch.as_tensor(columns, dtype=torch.bool, device=array.device).reshape(-1)
    if columns.shape != (array.shape[-1],) or not bool(columns.any()):
        raise ValueError(
            f"columns: expected a non-empty bool mask of {array.shape[-1]} columns, got {tuple(columns.shape)}"
        )
    return array[..., columns]


def _leading_basis(covariance: np.ndarray, num_virtual: int) -> np.ndarray:
    # eigh sorts eigenvalues ascending; the compression rows are the leading eigenvectors, conjugated.
    _, vectors = np.linalg.eigh(covariance)
    return np.conj(np.swapaxes(vectors[..., ::-1][..., :num_virtual], -1, -2))


def _covariance(data: torch.Tensor) -> np.ndarray:
    """(..., C, C) coil covariance of data (..., C, samples), on the CPU in complex128.

    Accumulated in the data's precision on its device: eigh returns orthonormal vectors anyway.
    """
    return (data @ data.mH).to(torch.complex128).cpu().numpy()


def scc_matrix(kspace: torch.Tensor, num_virtual: int, columns: torch.Tensor | None = None) -> torch.Tensor:
    """Single coil compression (Huang et al. 2008): one matrix (num_virtual, C) for the whole slice.

    Its rows are the leading left singular vectors of the coil data (C, samples) of the columns
    marked in ``columns`` (W,) (all columns if None), i.e. the principal components across coils.
    Returned in complex128 on the k-space's device.
    """
    num_virtual = _check_virtual(kspace, num_virtual)
    data = _calibration_columns(kspace, columns).reshape(kspace.shape[0], -1)
    return torch.from_numpy(_leading_basis(_covariance(data), num_virtual)).to(kspace.device)


def gcc_matrices(
    kspace: torch.Tensor, num_virtual: int, columns: torch.Tensor | None = None, window: int = 5
) -> torch.Tensor:
    """Geometric coil compression (Zhang et al. 2013): one matrix (num_virtual, C) per readout row.

    After an inverse FFT along the fully sampled readout axis H, each image row x has its own
    principal components across coils, estimated from the calibration columns of the ``window``
    rows around x. Neighbouring matrices are then aligned, outwards from the centre row, by the
    unitary P minimising ||P A_x - A_(x-1)|| (orthogonal Procrustes: P = V U^H from the SVD
    A_x A_(x-1)^H = U S V^H), so the virtual coils vary smoothly along x and look like physical
    coils. Returns (H, num_virtual, C) complex128 on the k-space's device.
    """
    num_virtual = _check_virtual(kspace, num_virtual)
    _check_window(window)
    return torch.from_numpy(_gcc_from_rows(_natural_rows(kspace), num_virtual, columns, window)).to(kspace.device)


def _natural_rows(kspace: torch.Tensor) -> torch.Tensor:
    """Uncentred inverse FFT along H, rows first: (H, C, W), contiguous for the per-row products.

    Against the centred transform its rows are rolled by H // 2 (``ifftshift`` of the centred order)
    and each multiplied by a unit phase common to all coils and columns. Per-row coil mixing commutes
    with that phase and the uncentred forward FFT removes it, so GCC can skip the shifts.
    """
    coils, height, width = kspace.shape
    rows = torch.empty((height, coils, width), dtype=torch.promote_types(kspace.dtype, torch.complex64),
                       device=kspace.device)
    for coil in range(coils):
        rows[:, coil] = torch.fft.ifft(kspace[coil], dim=0, norm="ortho")
    return rows


def _gcc_from_rows(rows: torch.Tensor, num_virtual: int, columns: torch.Tensor | None, window: int) -> np.ndarray:
    """Aligned GCC matrices (H, num_virtual, C), centred row order, from :func:`_natural_rows` output."""
    covariance = np.fft.fftshift(_covariance(_calibration_columns(rows, columns)), axes=0)  # row phases cancel
    # Sum over a window of rows via cumulative sums, clipped at both ends.
    cumulative = np.concatenate([np.zeros_like(covariance[:1]), np.cumsum(covariance, axis=0)])
    height = covariance.shape[0]
    low = np.clip(np.arange(height) - window // 2, 0, height)
    high = np.clip(np.arange(height) + window - window // 2, 0, height)
    return _aligned_outwards(_leading_basis(cumulative[high] - cumulative[low], num_virtual))


def _aligned_outwards(matrices: np.ndarray) -> np.ndarray:
    """Procrustes-align each row's matrix to its aligned neighbour towards the centre row.

    Aligning A_x to the aligned neighbour P A_n gives P_x = P_n Q_x, with Q_x = V U^H from the SVD
    A_x A_n^H = U S V^H of the unaligned matrices (the SVD of A_x A_n^H P^H has the same U and S
    and P V). So all SVDs are one batched call, and only the products of the tiny Q_x are sequential.
    """
    height = matrices.shape[0]
    middle = height // 2
    index = np.arange(height)
    neighbour = np.clip(np.where(index > middle, index - 1, index + 1), 0, height - 1)
    u, _, vh = np.linalg.svd(matrices @ np.conj(np.swapaxes(matrices[neighbour], -1, -2)))
    steps = np.conj(np.swapaxes(vh, -1, -2)) @ np.conj(np.swapaxes(u, -1, -2))
    rotations = np.empty_like(steps)
    rotations[middle] = np.eye(matrices.shape[1])
    for x in range(middle + 1, height):
        rotations[x] = rotations[x - 1] @ steps[x]
    for x in range(middle - 1, -1, -1):
        rotations[x] = rotations[x + 1] @ steps[x]
    return rotations @ matrices


def _check_virtual(kspace: torch.Tensor, num_virtual: int) -> int:
    if kspace.ndim != 3:
        raise ValueError(f"kspace: expected (coils, H, W), got shape {tuple(kspace.shape)}")
    if isinstance(num_virtual, bool) or not isinstance(num_virtual, int) or not 1 <= num_virtual <= kspace.shape[0]:
        raise ValueError(f"num_virtual: expected an integer in 1..{kspace.shape[0]}, got {num_virtual!r}")
    return num_virtual


def _check_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window: expected an integer >= 1, got {window!r}")


def compress_coils(
    kspace: torch.Tensor,
    method: str,
    num_virtual: int,
    columns: torch.Tensor | None = None,
    window: int = 5,
) -> torch.Tensor:
    """Compress kspace (C, H, W) to (num_virtual, H, W) with ``method`` "scc" or "gcc" ("none": as is).

    ``columns`` (W,) bool selects the calibration columns (pass the mask: test data has no others).
    With num_virtual = C the transform is unitary, so the k-space energy and the RSS image are kept.
    """
    if method not in COMPRESSION_METHODS:
        raise ValueError(f"method: expected one of {list(COMPRESSION_METHODS)}, got {method!r}")
    if method == "none":
        return kspace
    dtype = torch.promote_types(kspace.dtype, torch.complex64)
    if method == "scc":
        matrix = scc_matrix(kspace, num_virtual, columns).to(dtype)
        return torch.tensordot(matrix, kspace.to(dtype), dims=([1], [0]))
    num_virtual = _check_virtual(kspace, num_virtual)
    _check_window(window)
    rows = _natural_rows(kspace)
    matrices = np.fft.ifftshift(_gcc_from_rows(rows, num_virtual, columns, window), axes=0)
    compressed = torch.from_numpy(matrices).to(device=kspace.device, dtype=dtype) @ rows  # (H, num_virtual, W)
    out = torch.empty((num_virtual, *kspace.shape[1:]), dtype=dtype, device=kspace.device)
    for virtual in range(num_virtual):
        out[virtual] = torch.fft.fft(compressed[:, virtual], dim=0, norm="ortho")
    return out
