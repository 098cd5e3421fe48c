"""Centred FFTs, RSS, centre crop and crop-or-pad on NumPy arrays and torch tensors."""

import numpy as np
import pytest
import torch

from data.transforms import center_crop, crop_or_pad, fft2c, ifft2c, rss


def test_center_crop_picks_the_middle():
    x = np.arange(5 * 6).reshape(5, 6)
    assert center_crop(x, (3, 4)).tolist() == [[7, 8, 9, 10], [13, 14, 15, 16], [19, 20, 21, 22]]
    t = torch.arange(2 * 5 * 6).reshape(2, 5, 6)
    assert torch.equal(center_crop(t, (3, 4))[1], torch.from_numpy(x[1:4, 1:5] + 30))


def test_center_crop_rejects_larger_shape():
    with pytest.raises(ValueError, match="larger"):
        center_crop(np.zeros((4, 4)), (5, 4))
    with pytest.raises(ValueError, match="shape"):
        center_crop(np.zeros((4, 4)), (0, 4))


@pytest.mark.parametrize("to_tensor", [False, True])
def test_crop_or_pad_pads_with_zeros_and_inverts_crop(to_tensor):
    x = np.arange(1, 3 * 4 * 5 + 1, dtype=np.float32).reshape(3, 4, 5)
    data = torch.from_numpy(x) if to_tensor else x
    padded = crop_or_pad(data, (7, 8))
    assert tuple(padded.shape) == (3, 7, 8)
    assert float(padded.sum()) == float(x.sum())  # only zeros were added
    assert np.array_equal(np.asarray(center_crop(padded, (4, 5))), x)


def test_crop_or_pad_crops_one_axis_and_pads_the_other():
    x = np.ones((6, 3))
    out = crop_or_pad(x, (4, 6))
    assert out.shape == (4, 6)
    assert out[:, 1:4].all() and not out[:, [0, 4, 5]].any()
    assert np.array_equal(crop_or_pad(torch.ones(6, 3), (4, 6)).numpy(), out)


def test_crop_or_pad_same_shape_is_identity():
    x = np.random.default_rng(0).random((5, 5))
    assert np.array_equal(crop_or_pad(x, (5, 5)), x)


def test_centred_fft_is_orthonormal_and_puts_dc_in_the_middle():
    image = np.ones((6, 5), dtype=np.complex64)
    kspace = fft2c(image)
    assert np.flatnonzero(np.abs(kspace) > 1e-5).tolist() == [3 * 5 + 2]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 7)) + 1j * rng.standard_normal((2, 8, 7))
    assert np.allclose(ifft2c(fft2c(x)), x)
    assert np.isclose(np.sum(np.abs(fft2c(x)) ** 2), np.sum(np.abs(x) ** 2))


def test_rss_over_coils():
    coils = np.array([[[3.0]], [[4j]]])
    assert rss(coils).tolist() == [[5.0]]
