"""Where a batch meets the model (data.batch): masked on the device, cropped and compressed in training and
validation alike, MRAugmented in training only, with the target and data range following the transform."""

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from data.augment import AugmentConfig, CompressionConfig, CropConfig, ImageTransform, MRAugmentConfig
from data.augment.image import augment_slice
from data.batch import BatchPreparation, readout_crop_start
from data.masks import make_mask
from data.snu import RawSlice, to_sample
from data.transforms import center_crop, fft2c, ifft2c, rss

CPU = torch.device("cpu")
COILS, HEIGHT, WIDTH, TARGET = 4, 40, 32, (20, 20)
TURN = ImageTransform(rotation_deg=20.0, scale=1.1, translation=(1.5, -2.0))


def raw_slice(seed: int = 0, image_transform: ImageTransform = ImageTransform()) -> RawSlice:
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((COILS, HEIGHT, WIDTH)) + 1j * rng.standard_normal((COILS, HEIGHT, WIDTH))
    target = center_crop(rss(images), TARGET).astype(np.float32)
    mask = make_mask("equispaced", WIDTH, 4, 0.08, seed)
    return RawSlice(fft2c(images).astype(np.complex64), mask, target, 3.0 * float(target.max()), "brain_x4",
                    image_transform.to_vector())


def batch_of(*raws: RawSlice):
    return default_collate([to_sample(raw, "brain_acc4_1.h5", i) for i, raw in enumerate(raws)])


def complex_kspace(prepared, i: int = 0) -> np.ndarray:
    return torch.view_as_complex(prepared.masked_kspace[i].contiguous()).numpy()


def test_the_model_sees_masked_kspace_and_the_sample_as_it_was():
    raw = raw_slice()
    prepared = BatchPreparation(train=True)(batch_of(raw), CPU)
    np.testing.assert_array_equal(complex_kspace(prepared), raw.kspace * raw.mask)
    assert prepared.mask.dtype == torch.bool and prepared.mask.shape == (1, 1, 1, WIDTH, 1)
    np.testing.assert_array_equal(prepared.target[0].numpy(), raw.target)
    assert prepared.max_value.tolist() == pytest.approx([raw.max_value]) and prepared.organs == ["brain"]


def test_crop_keeps_the_target_rows_in_training_and_validation():
    raw = raw_slice()
    # 40 rows cropped to 27 around a 20-row target: plain nested centre crops would be one row off.
    config = AugmentConfig(crop=CropConfig(height=27))
    assert readout_crop_start(HEIGHT, 27, TARGET[0]) == 7
    for train in (True, False):
        prepared = BatchPreparation(config, train=train)(batch_of(raw._replace(mask=np.ones(WIDTH, bool))), CPU)
        cropped = complex_kspace(prepared)
        assert cropped.shape == (COILS, 27, WIDTH)
        np.testing.assert_allclose(center_crop(rss(ifft2c(cropped)), TARGET), raw.target, atol=1e-5)
    with pytest.raises(ValueError, match="crop.height"):
        BatchPreparation(AugmentConfig(crop=CropConfig(height=19)), train=False)(batch_of(raw), CPU)


def test_compression_reduces_coils_and_never_adds_any():
    raw = raw_slice()
    gcc = AugmentConfig(crop=CropConfig(height=30), compression=CompressionConfig(method="gcc", num_virtual_coils=2))
    for train in (True, False):
        prepared = BatchPreparation(gcc, train=train)(batch_of(raw), CPU)
        assert prepared.masked_kspace.shape == (1, 2, 30, WIDTH, 2) and prepared.target.shape == (1, *TARGET)
        assert not prepared.masked_kspace[0, :, :, ~torch.from_numpy(raw.mask)].any(), "masked after compression"
    many = AugmentConfig(compression=CompressionConfig(method="scc", num_virtual_coils=16))
    assert BatchPreparation(many, train=False)(batch_of(raw), CPU).masked_kspace.shape[1] == COILS


def test_mraugment_applies_the_drawn_transform_in_training_only():
    raw = raw_slice(image_transform=TURN)
    config = AugmentConfig(mraugment=MRAugmentConfig(enabled=True))
    trained = BatchPreparation(config, train=True)(batch_of(raw), CPU)
    kspace, target, max_value = augment_slice(torch.from_numpy(raw.kspace), torch.from_numpy(raw.target),
                                              raw.max_value, TURN)
    np.testing.assert_allclose(complex_kspace(trained), (kspace * torch.from_numpy(raw.mask)).numpy(), atol=1e-6)
    np.testing.assert_allclose(trained.target[0].numpy(), target.numpy(), atol=1e-7)
    assert float(trained.max_value[0]) == pytest.approx(float(max_value))
    assert not np.allclose(trained.target[0].numpy(), raw.target, atol=1e-3)

    validated = BatchPreparation(config, train=False)(batch_of(raw), CPU)
    np.testing.assert_array_equal(validated.target[0].numpy(), raw.target)
    untouched = BatchPreparation(config, train=True)(batch_of(raw._replace(image_transform=np.zeros(8))), CPU)
    np.testing.assert_array_equal(complex_kspace(untouched), raw.kspace * raw.mask)


def test_mraugment_target_comes_from_all_coils_before_compression():
    raw = raw_slice(image_transform=TURN)
    mra = MRAugmentConfig(enabled=True)
    alone = BatchPreparation(AugmentConfig(mraugment=mra), train=True)(batch_of(raw), CPU)
    compressed = AugmentConfig(mraugment=mra, compression=CompressionConfig(method="scc", num_virtual_coils=2))
    both = BatchPreparation(compressed, train=True)(batch_of(raw), CPU)
    assert both.masked_kspace.shape[1] == 2
    assert torch.equal(both.target, alone.target) and torch.equal(both.max_value, alone.max_value)


def test_each_slice_of_a_batch_gets_its_own_transform():
    first, second = raw_slice(0, TURN), raw_slice(1, ImageTransform(flip_h=True))
    config = AugmentConfig(mraugment=MRAugmentConfig(enabled=True))
    together = BatchPreparation(config, train=True)(batch_of(first, second), CPU)
    for i, raw in enumerate((first, second)):
        alone = BatchPreparation(config, train=True)(batch_of(raw), CPU)
        torch.testing.assert_close(together.masked_kspace[i], alone.masked_kspace[0])
        torch.testing.assert_close(together.target[i], alone.target[0])
