"""The torch augmentation and coil compression against the NumPy/SciPy code they replaced
(``reference_augment``), on random complex data of odd, even and non-square shapes.

Measured on these shapes (relative to the largest magnitude of the reference output):

- centred FFTs: 8e-16 in complex128, 2.3e-7 in complex64;
- transform_images: flips bit-identical; every affine kind (rotation, 90-degree rotation, magnify,
  shrink, translation, shear, combined), both paddings, border band included: 3e-14 in complex128,
  7.2e-6 in complex64. The float32 sampling coordinates of ``grid_sample`` are good to about 5e-5
  pixel, so at full size (768 x 396) complex64 differs by up to 8e-5 on white noise and 1.2e-5 on
  noise smoothed over 3 pixels;
- augment_slice from complex64 k-space: k-space 1.6e-6, target 2.4e-6, data range 7e-7; from
  complex128 k-space the complex64/float32 outputs are identical (data range 2e-16);
- crop_readout: 2.1e-7 (complex64), 6e-16 (complex128);
- SCC and GCC matrices (absolute; their rows are orthonormal): 3.3e-6 from complex64 k-space (the
  covariances are accumulated in the data's precision), 2.4e-14 from complex128; compressed k-space
  2.5e-6 / 5e-15.

The tolerances below leave a margin of about 3x over these measurements.
"""

import numpy as np
import pytest
import reference_augment as reference
import torch

from data.augment import (
    ImageTransform,
    augment_slice,
    compress_coils,
    crop_readout,
    gcc_matrices,
    scc_matrix,
    transform_images,
)
from data.augment import image as image_module
from data.transforms import center_crop, fft2c, fftc, ifft2c, rss

SHAPES = [(3, 33, 20), (2, 32, 48), (2, 17, 17)]
KINDS = {
    "flip_h": ImageTransform(flip_h=True),
    "flip_v": ImageTransform(flip_v=True),
    "both_flips": ImageTransform(flip_h=True, flip_v=True),
    "rotation": ImageTransform(rotation_deg=37.0),
    "rotation_90": ImageTransform(rotation_deg=90.0),
    "magnify": ImageTransform(scale=1.23),
    "shrink": ImageTransform(scale=0.8),
    "translation": ImageTransform(translation=(3.3, -5.7)),
    "shear": ImageTransform(shear_deg=(7.0, -11.0)),
    "combined": ImageTransform(
        flip_h=True, rotation_deg=-23.0, scale=1.1, translation=(2.5, 4.1), shear_deg=(5.0, -4.0)
    ),
}
# Relative tolerance per precision (of the reference's largest magnitude).
TRANSFORM_TOLERANCE = {np.complex64: 2e-5, np.complex128: 1e-12}
COIL_TOLERANCE = {np.complex64: 1e-5, np.complex128: 1e-12}


def random_complex(shape: tuple[int, ...], dtype=np.complex128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def relative_error(result: torch.Tensor, expected: np.ndarray) -> float:
    return float(np.abs(result.numpy() - expected).max() / np.abs(expected).max())


def calibration_columns(width: int, seed: int = 0) -> np.ndarray:
    columns = np.random.default_rng(seed).random(width) < 0.4
    columns[width // 2] = True
    return columns


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("shape", SHAPES + [(4, 1, 1)])
def test_centred_ffts_equal_numpy_shift_fft_shift(shape, dtype):
    """fftc folds the shifts into phase ramps; it equals fftshift(fft(ifftshift(x))) on odd and even axes."""
    x = random_complex(shape, dtype)
    tolerance = 1e-6 if dtype == np.complex64 else 1e-13
    tensor = torch.from_numpy(x)
    assert fft2c(tensor).dtype == tensor.dtype
    assert relative_error(fft2c(tensor), fft2c(x)) < tolerance
    assert relative_error(ifft2c(tensor), ifft2c(x)) < tolerance
    along_rows = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(x, axes=-2), axis=-2, norm="ortho"), axes=-2)
    assert relative_error(fftc(tensor, (-2,)), along_rows) < tolerance
    assert relative_error(rss(tensor), rss(x)) < tolerance


@pytest.mark.parametrize("padding", ["reflect", "zero"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_transform_images_matches_scipy_affine_transform(kind, padding):
    """Every kind and padding, border band included: 1e-12 in complex128, 2e-5 in complex64; flips exact."""
    transform = KINDS[kind]
    for seed, shape in enumerate(SHAPES):
        for dtype in (np.complex64, np.complex128):
            images = random_complex(shape, dtype, seed)
            expected = reference.transform_images(images, transform, padding)
            result = transform_images(torch.from_numpy(images), transform, padding)
            assert result.dtype == torch.from_numpy(expected).dtype and result.shape == images.shape
            if transform.is_affine:
                assert relative_error(result, expected) < TRANSFORM_TOLERANCE[dtype], (shape, dtype)
            else:
                assert np.array_equal(result.numpy(), expected)


def test_reflect_padding_is_half_sample_symmetric_like_scipy():
    """A shift by 1.3 columns samples column -1.3, between mirrored columns -2 -> 1 and -1 -> 0."""
    row = torch.arange(1.0, 7.0, dtype=torch.float64)
    images = (row + 0j).expand(1, 3, 6)
    shifted = transform_images(images, ImageTransform(translation=(0.0, 1.3)))[0, 1].real
    torch.testing.assert_close(shifted[:3], torch.tensor([0.3 * 2 + 0.7 * 1, 1.0, 1.7], dtype=torch.float64))


def test_zero_padding_does_not_interpolate_towards_the_padding_like_scipy_constant():
    """scipy's "constant" mode zeroes sample points outside [0, size - 1] instead of blending the edge
    pixel with zero (what grid_sample's "zeros" would do): the border band matches it exactly."""
    row = torch.arange(1.0, 7.0, dtype=torch.float64)
    images = (row + 0j).expand(1, 3, 6)
    for shift, expected in ((0.3, [0.0, 1.7]), (-0.3, [5.3, 0.0])):
        out = transform_images(images, ImageTransform(translation=(0.0, shift)), padding="zero")[0, 1].real
        edge = out[:2] if shift > 0 else out[-2:]
        torch.testing.assert_close(edge, torch.tensor(expected, dtype=torch.float64))
        reference_out = reference.transform_images(images.numpy(), ImageTransform(translation=(0.0, shift)), "zero")
        assert np.allclose(out.numpy(), reference_out[0, 1].real, rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding", ["reflect", "zero"])
@pytest.mark.parametrize("kind", ["flip_h", "combined"])
def test_augment_slice_gives_the_same_kspace_target_and_max(kind, padding):
    """k-space and target to 1e-5, data range to 5e-6 from complex64 k-space; from complex128 to 1e-7
    (measured identical: both round the same float64 results to complex64 / float32)."""
    for seed, (shape, crop) in enumerate([((4, 40, 30), (20, 20)), ((3, 33, 21), (15, 16))]):
        images = random_complex(shape, seed=seed)
        target = center_crop(rss(images), crop).astype(np.float32)
        for dtype in (np.complex64, np.complex128):
            kspace = fft2c(images).astype(dtype)
            want_k, want_target, want_max = reference.augment_slice(kspace, target, 2.5, KINDS[kind], padding)
            got_k, got_target, got_max = augment_slice(
                torch.from_numpy(kspace), torch.from_numpy(target), 2.5, KINDS[kind], padding
            )
            tolerance = 1e-5 if dtype == np.complex64 else 1e-7
            assert relative_error(got_k, want_k) < tolerance
            assert relative_error(got_target, want_target) < tolerance
            assert abs(float(got_max) - want_max) / want_max < tolerance / 2


def test_crop_readout_matches_the_reference():
    """3e-7 relative in complex64, 1e-15 in complex128, centred and explicit starts, odd and even rows."""
    for seed, shape in enumerate(SHAPES):
        for dtype in (np.complex64, np.complex128):
            kspace = random_complex(shape, dtype, seed)
            for height, start in ((shape[1] // 2, None), (shape[1] - 3, 1)):
                expected = reference.crop_readout(kspace, height, start)
                result = crop_readout(torch.from_numpy(kspace), height, start)
                assert result.dtype == torch.from_numpy(kspace).dtype
                assert relative_error(result, expected) < COIL_TOLERANCE[dtype] / 10


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_compression_matrices_match_the_reference(dtype):
    """Same eigh (NumPy) and so the same phase conventions: SCC and GCC matrices equal the reference's
    to 1e-5 (complex64 k-space) / 1e-12 (complex128), with and without calibration columns, for any
    window; the batched Procrustes alignment equals the reference's row-by-row one."""
    for seed, shape in enumerate(SHAPES):
        kspace = random_complex(shape, dtype, seed)
        columns = calibration_columns(shape[-1], seed)
        tensor, mask = torch.from_numpy(kspace), torch.from_numpy(columns)
        for num_virtual in (1, 2, shape[0]):
            for cols, numpy_cols in ((mask, columns), (None, None)):
                scc = scc_matrix(tensor, num_virtual, cols).numpy()
                expected = reference.scc_matrix(kspace, num_virtual, numpy_cols)
                assert np.abs(scc - expected).max() < COIL_TOLERANCE[dtype]
                for window in (1, 5):
                    gcc = gcc_matrices(tensor, num_virtual, cols, window)
                    expected = reference.gcc_matrices(kspace, num_virtual, numpy_cols, window)
                    assert np.abs(gcc.numpy() - expected).max() < COIL_TOLERANCE[dtype], (shape, num_virtual, window)


@pytest.mark.parametrize("method", ["scc", "gcc"])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_compressed_kspace_matches_the_reference(method, dtype):
    """1e-5 relative from complex64 k-space, 1e-12 from complex128; the dtype follows the input."""
    for seed, shape in enumerate(SHAPES):
        kspace = random_complex(shape, dtype, seed)
        columns = calibration_columns(shape[-1], seed)
        for num_virtual in (2, shape[0]):
            expected = reference.compress_coils(kspace, method, num_virtual, columns)
            result = compress_coils(torch.from_numpy(kspace), method, num_virtual, torch.from_numpy(columns))
            assert result.dtype == torch.from_numpy(expected).dtype and result.shape == expected.shape
            assert relative_error(result, expected) < COIL_TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_outputs_stay_on_the_device_with_the_documented_dtypes(dtype):
    """Everything returns on the input's device (the CPU here); transform, crop and compression keep
    the complex dtype, augment_slice returns complex64 k-space, a float32 target and a 0-d data range
    in the dtype of a floating-point max_value tensor (float64 from a Python number)."""
    kspace = torch.from_numpy(random_complex((3, 24, 18))).to(dtype)
    device = kspace.device
    columns = torch.ones(18, dtype=torch.bool)
    for transform in (KINDS["both_flips"], KINDS["combined"]):
        out = transform_images(kspace, transform)
        assert out.dtype == dtype and out.device == device
    assert crop_readout(kspace, 20).dtype == dtype
    for method in ("scc", "gcc"):
        out = compress_coils(kspace, method, 2, columns)
        assert out.dtype == dtype and out.device == device and out.is_contiguous()
    assert scc_matrix(kspace, 2).device == gcc_matrices(kspace, 2).device == device
    target = torch.ones(12, 12)
    new_k, new_target, new_max = augment_slice(kspace, target, torch.tensor(3.0), KINDS["combined"])
    assert (new_k.dtype, new_target.dtype, new_max.dtype, new_max.shape) == (torch.complex64, torch.float32,
                                                                               torch.float32, ())
    assert new_k.device == new_target.device == new_max.device == device
    assert augment_slice(kspace, target, 3.0, KINDS["combined"])[2].dtype == torch.float64


def test_augment_slice_chunks_coils_without_changing_the_result(monkeypatch):
    """On the CPU coils go through in chunks of a few MiB; one coil per chunk gives the same output."""
    kspace = torch.from_numpy(random_complex((5, 24, 20), np.complex64))
    target = torch.ones(10, 10)
    whole = augment_slice(kspace, target, 1.0, KINDS["combined"])
    monkeypatch.setattr(image_module, "_CPU_CHUNK_BYTES", 1)
    chunked = augment_slice(kspace, target, 1.0, KINDS["combined"])
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_identity_transform_round_trips_the_kspace():
    """augment_slice with no transform is ifft2c then fft2c: k-space and RSS crop come back."""
    images = random_complex((2, 16, 14), np.complex64)
    kspace = torch.from_numpy(fft2c(images))
    target = torch.from_numpy(center_crop(rss(images), (8, 8)).astype(np.float32))
    new_k, new_target, new_max = augment_slice(kspace, target, 2.0, ImageTransform())
    torch.testing.assert_close(new_k, kspace, rtol=0, atol=1e-5)
    torch.testing.assert_close(new_target, target, rtol=0, atol=1e-5)
    assert float(new_max) == pytest.approx(2.0, rel=1e-6)
    torch.testing.assert_close(ifft2c(new_k), ifft2c(kspace), rtol=0, atol=1e-5)
