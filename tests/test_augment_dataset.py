"""The composed augmenter on SNU datasets: the transform hook, duplication, crop and compression,
evaluation mode, pickling and DataLoader workers."""

import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data import SNUSliceDataset, make_mask, nominal_acceleration
from data.augment import (
    AugmentConfig,
    CompressionConfig,
    CropConfig,
    DuplicatedSlices,
    DuplicationConfig,
    MaskAugmentConfig,
    MRAugmentConfig,
    ProbabilitySchedule,
    SliceAugmenter,
    build_mask_bank,
)
from data.transforms import center_crop, fft2c, ifft2c, rss

SLICES, COILS, HEIGHT, TARGET = 2, 4, 40, (20, 20)
ALWAYS = ProbabilitySchedule(p_max=1.0)


def write_file(root, name: str, width: int, acceleration: int, seed: int) -> np.ndarray:
    """An SNU k-space/image pair whose label is the RSS crop of its coil images; returns the mask."""
    rng = np.random.default_rng(seed)
    shape = (SLICES, COILS, HEIGHT, width)
    images = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    mask = make_mask("equispaced", width, acceleration, 0.08, seed)
    label = center_crop(rss(images, axis=1), TARGET).astype(np.float32)
    for sub in ("kspace", "image"):
        (root / "train" / sub).mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "train" / "kspace" / name, "w") as f:
        f.create_dataset("kspace", data=fft2c(images).astype(np.complex64))
        f.create_dataset("mask", data=mask.astype(np.float32))
    with h5py.File(root / "train" / "image" / name, "w") as f:
        f.create_dataset("image_label", data=label)
        f.attrs["max"] = float(label.max())
    return mask


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("snu")
    write_file(root, "brain_acc4_1.h5", 64, 4, 0)
    write_file(root, "brain_acc8_1.h5", 64, 8, 1)
    write_file(root, "knee_acc4_1.h5", 48, 4, 2)
    return root


def assert_same_sample(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y


def test_transform_hook_passes_raw_fields_and_uses_what_it_returns(root):
    plain = SNUSliceDataset(root, "train")
    calls = []

    def record(kspace, mask, target, max_value, category, index):
        calls.append((kspace.shape, mask.dtype, target.shape, max_value, category, index))
        return kspace, mask, target, max_value, category

    hooked = SNUSliceDataset(root, "train", transform=record)
    for i in range(len(plain)):
        assert_same_sample(hooked[i], plain[i])
    hooked[-1]
    assert calls[0] == ((COILS, HEIGHT, 64), np.dtype(bool), TARGET, plain[0].max_value, "brain_x4", 0)
    assert calls[-1][-1] == len(plain) - 1  # negative indices arrive normalised

    def change(kspace, mask, target, max_value, category, index):
        return kspace[:2], np.arange(mask.size) % 2 == 0, target * 2, 7.0, "brain_x8"

    sample, raw = SNUSliceDataset(root, "train", transform=change)[1], plain[1]
    assert sample.masked_kspace.shape == (2, HEIGHT, 64, 2) and sample.mask.reshape(-1)[:4].tolist() == [1, 0, 1, 0]
    assert torch.all(sample.masked_kspace[:, :, 1::2] == 0)
    assert torch.allclose(sample.target, 2 * raw.target) and (sample.max_value, sample.category) == (7.0, "brain_x8")


def test_duplication_gives_every_slice_at_both_accelerations(root):
    plain = SNUSliceDataset(root, "train")
    bank = build_mask_bank(plain.files)
    masks = {f.name: plain[i * SLICES].mask.reshape(-1).numpy() for i, f in enumerate(plain.files)}
    config = AugmentConfig(duplication=DuplicationConfig(enabled=True))
    ds = SliceAugmenter(config, mask_bank=bank).wrap(plain)
    assert isinstance(ds, DuplicatedSlices) and len(ds) == 2 * len(plain) == 12
    assert ds.categories == ["brain_x4"] * 4 + ["knee_x4"] * 2 + ["brain_x8"] * 4 + ["knee_x8"] * 2
    assert ds.files == plain.files and plain.transform is None  # the base dataset is untouched
    for i in range(len(ds)):
        sample = ds[i]
        assert sample.category == ds.categories[i]
        mask = sample.mask.reshape(-1).numpy()
        if sample.category == "brain_x8":  # both brain files' x8 copies use the bank's one brain x8 mask
            assert np.array_equal(mask, masks["brain_acc8_1.h5"])
        elif sample.category == "brain_x4":  # own acceleration: own mask; brain_acc8's x4 copy: the bank's
            assert np.array_equal(mask, masks["brain_acc4_1.h5"])
        else:  # no knee x8 mask of width 48 in the bank: a generated equispaced x8 mask
            assert nominal_acceleration(mask, (4, 8)) == int(sample.category[-1])
        assert torch.all(sample.masked_kspace[:, :, ~mask] == 0)
    eval_augmenter = SliceAugmenter(config, train=False, mask_bank=bank)
    eval_view = eval_augmenter.wrap(plain)
    assert len(eval_view) == len(plain) and eval_view.transform is eval_augmenter
    with pytest.raises(ValueError, match="train=False"):
        DuplicatedSlices(plain, eval_augmenter)


def test_mask_augmentation_of_duplicates_uses_the_duplicated_acceleration(root):
    config = AugmentConfig(duplication=DuplicationConfig(enabled=True),
                           mask=MaskAugmentConfig(enabled=True, schedule=ALWAYS, kinds=("equispaced_fraction",)))
    ds = SliceAugmenter(config).wrap(SNUSliceDataset(root, "train"))
    for i in range(len(ds)):
        sample = ds[i]
        assert nominal_acceleration(sample.mask.reshape(-1), (4, 8)) == int(sample.category[-1])


def test_crop_keeps_the_target_rows_and_compression_reduces_coils(root):
    with h5py.File(root / "train" / "kspace" / "brain_acc4_1.h5", "r") as f:
        raw = {"kspace": f["kspace"][0], "mask": f["mask"][()].astype(bool)}
    with h5py.File(root / "train" / "image" / "brain_acc4_1.h5", "r") as f:
        raw["target"] = f["image_label"][0]
    # 40 rows cropped to 27 around a 20-row target: plain nested centre crops would be one row off.
    crop = SliceAugmenter(AugmentConfig(crop=CropConfig(height=27)))
    k27, _, target, _, _ = crop.apply(raw["kspace"], raw["mask"], raw["target"], 1.0, "brain_x4", epoch=0, slice_key=0)
    assert k27.shape == (COILS, 27, 64) and target is raw["target"]
    assert np.allclose(center_crop(rss(ifft2c(k27)), TARGET), raw["target"], atol=1e-5)
    with pytest.raises(ValueError, match="crop.height"):
        SliceAugmenter(AugmentConfig(crop=CropConfig(height=19))).apply(
            raw["kspace"], raw["mask"], raw["target"], 1.0, "brain_x4", epoch=0, slice_key=0)

    both = AugmentConfig(crop=CropConfig(height=30), compression=CompressionConfig(method="gcc", num_virtual_coils=2))
    for train in (True, False):
        sample = SliceAugmenter(both, train=train).wrap(SNUSliceDataset(root, "train"))[4]
        assert sample.masked_kspace.shape == (2, 30, 48, 2) and sample.target.shape == TARGET
    many = AugmentConfig(compression=CompressionConfig(method="scc", num_virtual_coils=16))
    assert SliceAugmenter(many).wrap(SNUSliceDataset(root, "train"))[0].masked_kspace.shape[0] == COILS


def test_mraugment_target_comes_from_all_coils_before_compression(root):
    mra = MRAugmentConfig(enabled=True, schedule=ALWAYS)
    augmented = SliceAugmenter(AugmentConfig(mraugment=mra), seed=3).wrap(SNUSliceDataset(root, "train"))[2]
    compressed = AugmentConfig(mraugment=mra, compression=CompressionConfig(method="scc", num_virtual_coils=2))
    sample = SliceAugmenter(compressed, seed=3).wrap(SNUSliceDataset(root, "train"))[2]
    assert sample.masked_kspace.shape[0] == 2
    assert torch.equal(sample.target, augmented.target) and sample.max_value == augmented.max_value


def test_epoch_reaches_dataloader_workers_and_everything_pickles(root):
    schedule = ProbabilitySchedule(p_max=1.0, delay=1)
    config = AugmentConfig(mraugment=MRAugmentConfig(enabled=True, schedule=schedule),
                           duplication=DuplicationConfig(enabled=True))
    augmenter = SliceAugmenter(config, seed=1)
    ds = augmenter.wrap(SNUSliceDataset(root, "train"))
    plain = SliceAugmenter(AugmentConfig(duplication=DuplicationConfig(enabled=True)), seed=1).wrap(
        SNUSliceDataset(root, "train"))
    assert_same_sample(pickle.loads(pickle.dumps(ds))[7], ds[7])
    assert_same_sample(ds[7], plain[7])  # epoch 0: before the delay
    assert augmenter.probabilities() == {"mask": 0.0, "mraugment": 0.0}
    augmenter.set_epoch(1, [0.5])
    assert augmenter.probabilities() == {"mask": 0.0, "mraugment": 1.0}
    expected = [ds[i] for i in range(4)]
    assert not torch.equal(expected[0].target, plain[0].target)
    loader = DataLoader(torch.utils.data.Subset(ds, range(4)), batch_size=None, num_workers=2)
    for got, want in zip(loader, expected, strict=True):
        assert torch.equal(got.masked_kspace, want.masked_kspace) and torch.equal(got.target, want.target)
