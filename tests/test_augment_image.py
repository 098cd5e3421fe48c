"""MRAugment-style image augmentation: exact flips, rotation against np.rot90, shared coil draw,
recomputed target and data range, padding, and seeded draws."""

import numpy as np
import pytest

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
from data.transforms import center_crop, fft2c, ifft2c, rss


def coil_images(shape=(4, 48, 32), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_flips_are_exact_and_self_inverse():
    images = coil_images()
    horizontal, vertical = ImageTransform(flip_h=True), ImageTransform(flip_v=True)
    assert np.array_equal(transform_images(images, horizontal), np.flip(images, axis=-1))
    assert np.array_equal(transform_images(images, vertical), np.flip(images, axis=-2))
    both = ImageTransform(flip_h=True, flip_v=True)
    assert np.array_equal(transform_images(transform_images(images, both), both), images)
    assert np.array_equal(transform_images(images, ImageTransform()), images)
    assert ImageTransform().is_identity and not horizontal.is_affine


@pytest.mark.parametrize(("angle", "turns"), [(90.0, 1), (-90.0, -1), (180.0, 2)])
def test_rotation_matches_rot90_inside_the_support(angle, turns):
    square = coil_images((3, 32, 32))
    rotated = transform_images(square, ImageTransform(rotation_deg=angle))
    assert np.allclose(rotated, np.rot90(square, turns, axes=(-2, -1)), atol=1e-5)
    # On a 48 x 32 image the central 32 x 32 square is rotated in place; the rest comes from padding.
    tall = coil_images((3, 48, 32), seed=1)
    rotated = transform_images(tall, ImageTransform(rotation_deg=angle))
    assert np.allclose(rotated[:, 8:40], np.rot90(tall[:, 8:40], turns, axes=(-2, -1)), atol=1e-5)


def test_every_coil_gets_the_same_transform():
    base = coil_images((1, 40, 36))[0]
    gains = np.array([1.0, -2.0 + 1j, 0.5j], dtype=np.complex64)
    stack = gains[:, None, None] * base
    transform = ImageTransform(flip_h=True, rotation_deg=23.0, scale=1.2, translation=(3.5, -2.0), shear_deg=(5, -4))
    out = transform_images(stack, transform)
    assert not np.allclose(out[0], base, atol=1e-3)
    for c in range(1, 3):
        assert np.allclose(out[c], gains[c] * out[0], atol=1e-5)


def test_padding_modes_fill_the_uncovered_band():
    images = coil_images((2, 32, 32)) + 5
    shift = ImageTransform(translation=(0.0, 6.0))  # content moves right: columns 0..5 are uncovered
    zero = transform_images(images, shift, padding="zero")
    reflect = transform_images(images, shift, padding="reflect")
    assert np.all(zero[..., :5] == 0) and np.all(np.abs(reflect[..., :6]) > 0)
    assert np.allclose(zero[..., 6:], images[..., :-6], atol=1e-5)
    assert np.allclose(reflect[..., :6], np.flip(images[..., :6], axis=-1), atol=1e-5)


def test_augmented_slice_target_and_max_are_recomputed():
    images = coil_images((4, 64, 48)) * 0.1
    images[:, 30, 20] = 5.0  # a bright spot inside the (32, 32) target crop
    kspace = fft2c(images).astype(np.complex64)
    target = center_crop(rss(images), (32, 32)).astype(np.float32)
    max_value = 3.0 * float(target.max())  # the file max exceeds the slice max

    flipped_k, flipped_t, flipped_max = augment_slice(kspace, target, max_value, ImageTransform(flip_h=True))
    assert flipped_max == pytest.approx(max_value, rel=1e-6)
    assert np.allclose(flipped_t, np.flip(target, axis=-1), atol=1e-5)

    shift = ImageTransform(translation=(0.0, 20.0))  # the spot leaves the crop
    new_k, new_target, new_max = augment_slice(kspace, target, max_value, shift, padding="zero")
    assert new_k.dtype == np.complex64 and new_k.shape == kspace.shape
    assert new_target.dtype == np.float32 and new_target.shape == target.shape
    assert np.allclose(new_target, center_crop(rss(ifft2c(new_k)), (32, 32)), atol=1e-5)
    assert new_target.max() < 0.5 * target.max()
    assert new_max == pytest.approx(max_value * new_target.max() / target.max(), rel=1e-5)


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


def test_augmenter_is_seeded_per_sample_and_recomputes_the_target():
    config = AugmentConfig(mraugment=MRAugmentConfig(enabled=True, schedule=ProbabilitySchedule(p_max=1.0)))
    kspace, target = _slice()
    mask = np.ones(24, dtype=bool)

    def run(seed, epoch=0, key=0):
        return SliceAugmenter(config, seed=seed).apply(
            kspace, mask, target, 1.0, "knee_x4", epoch=epoch, slice_key=key
        )

    first, again = run(1), run(1)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[2], again[2]) and first[3] == again[3]
    for other in (run(2), run(1, epoch=1), run(1, key=1)):
        assert not np.allclose(other[0], first[0])
    k_out, mask_out, target_out, _, category = first
    assert np.allclose(target_out, center_crop(rss(ifft2c(k_out)), (20, 20)), atol=1e-5)
    assert np.array_equal(mask_out, mask) and category == "knee_x4"


def test_augmenter_never_fires_at_probability_zero_or_in_eval():
    schedule = ProbabilitySchedule(kind="linear", p_max=1.0, delay=3)
    config = AugmentConfig(mraugment=MRAugmentConfig(enabled=True, schedule=schedule))
    kspace, target = _slice()
    mask = np.ones(24, dtype=bool)
    for augmenter, epoch in ((SliceAugmenter(config), 3), (SliceAugmenter(config, train=False), 9)):
        out = augmenter.apply(kspace, mask, target, 2.0, "brain_x8", epoch=epoch, slice_key=5)
        assert out[0] is kspace and out[2] is target and out[3] == 2.0


def test_augmenter_refuses_undersampled_kspace():
    kspace, target = _slice()
    mask = np.arange(24) % 4 == 0
    config = AugmentConfig(mraugment=MRAugmentConfig(enabled=True, schedule=ProbabilitySchedule(p_max=1.0)))
    with pytest.raises(DataFormatError, match="brain_x4 slice 3: augmentation: needs fully sampled k-space"):
        SliceAugmenter(config).apply(kspace * mask, mask, target, 1.0, "brain_x4", epoch=0, slice_key=3)
