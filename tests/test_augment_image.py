"""MRAugment-style image augmentation: exact flips, rotation against rot90, shared coil draw,
recomputed target and data range, padding, and seeded draws (torch tensors; equivalence with the
NumPy reference is in test_augment_torch_equivalence.py)."""

import numpy as np
import pytest
import torch

from data import DataFormatError
from data.augment import (
    AugmentConfig,
    ImageTransform,
    MRAugmentConfig,
    ProbabilitySchedule,
    SliceAugmenter,
    augment_slice,
    draw_image_transform,
    transform_images,
)
from data.snu import RawSlice
from data.transforms import center_crop, fft2c, ifft2c, rss


def coil_images(shape=(4, 48, 32), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def coil_tensor(shape=(4, 48, 32), seed=0) -> torch.Tensor:
    return torch.from_numpy(coil_images(shape, seed))


def test_flips_are_exact_and_self_inverse():
    images = coil_tensor()
    horizontal, vertical = ImageTransform(flip_h=True), ImageTransform(flip_v=True)
    assert torch.equal(transform_images(images, horizontal), torch.flip(images, [-1]))
    assert torch.equal(transform_images(images, vertical), torch.flip(images, [-2]))
    both = ImageTransform(flip_h=True, flip_v=True)
    assert torch.equal(transform_images(transform_images(images, both), both), images)
    assert transform_images(images, ImageTransform()) is images
    assert ImageTransform().is_identity and not horizontal.is_affine


@pytest.mark.parametrize(("angle", "turns"), [(90.0, 1), (-90.0, -1), (180.0, 2)])
def test_rotation_matches_rot90_inside_the_support(angle, turns):
    square = coil_tensor((3, 32, 32))
    rotated = transform_images(square, ImageTransform(rotation_deg=angle))
    torch.testing.assert_close(rotated, torch.rot90(square, turns, dims=(-2, -1)), rtol=0, atol=1e-5)
    # On a 48 x 32 image the central 32 x 32 square is rotated in place; the rest comes from padding.
    tall = coil_tensor((3, 48, 32), seed=1)
    rotated = transform_images(tall, ImageTransform(rotation_deg=angle))
    torch.testing.assert_close(rotated[:, 8:40], torch.rot90(tall[:, 8:40], turns, dims=(-2, -1)), rtol=0, atol=1e-5)


def test_every_coil_gets_the_same_transform():
    base = coil_tensor((1, 40, 36))[0]
    gains = torch.tensor([1.0, -2.0 + 1j, 0.5j], dtype=torch.complex64)
    stack = gains[:, None, None] * base
    transform = ImageTransform(flip_h=True, rotation_deg=23.0, scale=1.2, translation=(3.5, -2.0), shear_deg=(5, -4))
    out = transform_images(stack, transform)
    assert not torch.allclose(out[0], base, atol=1e-3)
    for c in range(1, 3):
        torch.testing.assert_close(out[c], gains[c] * out[0], rtol=0, atol=1e-5)


def test_padding_modes_fill_the_uncovered_band():
    images = coil_tensor((2, 32, 32)) + 5
    shift = ImageTransform(translation=(0.0, 6.0))  # content moves right: columns 0..5 are uncovered
    zero = transform_images(images, shift, padding="zero")
    reflect = transform_images(images, shift, padding="reflect")
    assert torch.all(zero[..., :5] == 0) and torch.all(reflect[..., :6].abs() > 0)
    torch.testing.assert_close(zero[..., 6:], images[..., :-6], rtol=0, atol=1e-5)
    torch.testing.assert_close(reflect[..., :6], torch.flip(images[..., :6], [-1]), rtol=0, atol=1e-5)


def test_augmented_slice_target_and_max_are_recomputed():
    images = coil_tensor((4, 64, 48)) * 0.1
    images[:, 30, 20] = 5.0  # a bright spot inside the (32, 32) target crop
    kspace = fft2c(images)
    target = center_crop(rss(images), (32, 32))
    max_value = 3.0 * float(target.max())  # the file max exceeds the slice max

    flipped_k, flipped_t, flipped_max = augment_slice(kspace, target, max_value, ImageTransform(flip_h=True))
    assert flipped_max.shape == () and float(flipped_max) == pytest.approx(max_value, rel=1e-6)
    torch.testing.assert_close(flipped_t, torch.flip(target, [-1]), rtol=0, atol=1e-5)

    shift = ImageTransform(translation=(0.0, 20.0))  # the spot leaves the crop
    new_k, new_target, new_max = augment_slice(kspace, target, torch.tensor(max_value), shift, padding="zero")
    assert new_k.dtype == torch.complex64 and new_k.shape == kspace.shape
    assert new_target.dtype == torch.float32 and new_target.shape == target.shape
    torch.testing.assert_close(new_target, center_crop(rss(ifft2c(new_k)), (32, 32)), rtol=0, atol=1e-5)
    assert new_target.max() < 0.5 * target.max()
    assert float(new_max) == pytest.approx(max_value * float(new_target.max() / target.max()), rel=1e-5)


def test_max_value_is_kept_when_the_slice_crop_is_empty():
    """A slice whose RSS crop is all zero has no maximum to scale by: the data range stays as it is."""
    kspace = torch.zeros((2, 24, 20), dtype=torch.complex64)
    _, new_target, new_max = augment_slice(kspace, torch.zeros(8, 8), 4.0, ImageTransform(rotation_deg=10.0))
    assert float(new_max) == 4.0 and not new_target.any()


def test_draws_use_weights_ranges_and_a_fixed_number_of_random_numbers():
    config = MRAugmentConfig(max_rotation_deg=30, max_scaling=0.1, max_translation=(0.1, 0.2), max_shear_deg=5)
    draws = [draw_image_transform(config, np.random.default_rng(s), (100, 50)) for s in range(200)]
    assert all(abs(d.rotation_deg) <= 30 and 0.9 <= d.scale <= 1.1 for d in draws)
    assert all(abs(d.translation[0]) <= 10 and abs(d.translation[1]) <= 10 for d in draws)
    assert all(max(abs(a) for a in d.shear_deg) <= 5 for d in draws)
    assert 70 < sum(d.flip_h for d in draws) < 130  # weight 0.5
    assert all(d.rotation_deg != 0 for d in draws)  # weight 1
    no_flips = MRAugmentConfig(flip_h=0.0, flip_v=0.0, max_rotation_deg=30, max_scaling=0.1,
                               max_translation=(0.1, 0.2), max_shear_deg=5)
    for s, d in enumerate(draws[:20]):
        other = draw_image_transform(no_flips, np.random.default_rng(s), (100, 50))
        assert not other.flip_h and not other.flip_v
        assert (other.rotation_deg, other.scale, other.translation) == (d.rotation_deg, d.scale, d.translation)
    none = MRAugmentConfig(flip_h=0, flip_v=0, rotation=0, scaling=0, translation=0, shear=0)
    assert draw_image_transform(none, np.random.default_rng(0), (10, 10)).is_identity


def _slice(seed=0):
    images = coil_images((3, 40, 24), seed) + 1
    return fft2c(images).astype(np.complex64), center_crop(rss(images), (20, 20)).astype(np.float32)


def test_augmenter_draws_a_seeded_transform_per_sample_and_the_device_applies_it():
    config = AugmentConfig(mraugment=MRAugmentConfig(enabled=True, schedule=ProbabilitySchedule(p_max=1.0)))
    kspace, target = _slice()
    mask = np.ones(24, dtype=bool)

    def run(seed, epoch=0, key=0):
        return SliceAugmenter(config, seed=seed).apply(RawSlice(kspace, mask, target, 1.0, "knee_x4"), epoch=epoch,
                                                       slice_key=key)

    first, again = run(1), run(1)
    assert np.array_equal(first.image_transform, again.image_transform) and first.image_transform.any()
    for other in (run(2), run(1, epoch=1), run(1, key=1)):
        assert not np.array_equal(other.image_transform, first.image_transform)
    assert first.kspace is kspace and first.target is target, "the loader only draws"
    assert np.array_equal(first.mask, mask) and first.category == "knee_x4"
    transform = ImageTransform.from_vector(first.image_transform)
    assert np.array_equal(transform.to_vector(), first.image_transform)
    k_out, target_out, _ = augment_slice(torch.from_numpy(kspace), torch.from_numpy(target), 1.0, transform)
    np.testing.assert_allclose(target_out.numpy(), center_crop(rss(ifft2c(k_out.numpy())), (20, 20)), atol=1e-5)


def test_augmenter_never_fires_at_probability_zero():
    schedule = ProbabilitySchedule(kind="linear", p_max=1.0, delay=3)
    config = AugmentConfig(mraugment=MRAugmentConfig(enabled=True, schedule=schedule))
    kspace, target = _slice()
    out = SliceAugmenter(config).apply(RawSlice(kspace, np.ones(24, dtype=bool), target, 2.0, "brain_x8"), epoch=3,
                                       slice_key=5)
    assert not out.image_transform.any() and out.kspace is kspace and out.max_value == 2.0
    assert ImageTransform.from_vector(out.image_transform).is_identity


def test_augmenter_refuses_undersampled_kspace():
    kspace, target = _slice()
    mask = np.arange(24) % 4 == 0
    config = AugmentConfig(mraugment=MRAugmentConfig(enabled=True, schedule=ProbabilitySchedule(p_max=1.0)))
    with pytest.raises(DataFormatError, match="brain_x4 slice 3: augmentation: needs fully sampled k-space"):
        SliceAugmenter(config).apply(RawSlice(kspace * mask, mask, target, 1.0, "brain_x4"), epoch=0, slice_key=3)
