"""The loader-side augmenter on SNU datasets: the transform hook, duplication, mask augmentation, the
MRAugment draw it hands to the device, pickling and DataLoader workers."""

import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data import SNUSliceDataset, make_mask, nominal_acceleration
from data.augment import (
    AugmentConfig,
    DuplicatedSlices,
    DuplicationConfig,
    MaskAugmentConfig,
    MRAugmentConfig,
    ProbabilitySchedule,
    SliceAugmenter,
    build_mask_bank,
)
from data.transforms import center_crop, fft2c, rss

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

    def record(raw, index):
        calls.append((raw.kspace.shape, raw.mask.dtype, raw.target.shape, raw.max_value, raw.category, index))
        return raw

    hooked = SNUSliceDataset(root, "train", transform=record)
    for i in range(len(plain)):
        assert_same_sample(hooked[i], plain[i])
    hooked[-1]
    assert calls[0] == ((COILS, HEIGHT, 64), np.dtype(bool), TARGET, plain[0].max_value, "brain_x4", 0)
    assert calls[-1][-1] == len(plain) - 1  # negative indices arrive normalised

    def change(raw, index):
        return raw._replace(kspace=raw.kspace[:2], mask=np.arange(raw.mask.size) % 2 == 0, target=raw.target * 2,
                            max_value=7.0, category="brain_x8", image_transform=np.arange(8, dtype=np.float32))

    sample, raw = SNUSliceDataset(root, "train", transform=change)[1], plain[1]
    assert sample.kspace.shape == (2, HEIGHT, 64, 2) and sample.mask.reshape(-1)[:4].tolist() == [1, 0, 1, 0]
    assert torch.equal(sample.kspace, raw.kspace[:2]), "k-space as the transform returned it, not masked yet"
    assert torch.allclose(sample.target, 2 * raw.target) and (sample.max_value, sample.category) == (7.0, "brain_x8")
    assert sample.image_transform.tolist() == list(range(8))


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
        slice_index, _ = ds.index[i]
        assert torch.equal(sample.kspace, plain[slice_index].kspace), "duplication changes masks, not data"


def test_mask_augmentation_of_duplicates_uses_the_duplicated_acceleration(root):
    config = AugmentConfig(duplication=DuplicationConfig(enabled=True),
                           mask=MaskAugmentConfig(enabled=True, schedule=ALWAYS, kinds=("equispaced_fraction",)))
    ds = SliceAugmenter(config).wrap(SNUSliceDataset(root, "train"))
    for i in range(len(ds)):
        sample = ds[i]
        assert nominal_acceleration(sample.mask.reshape(-1), (4, 8)) == int(sample.category[-1])


def test_mraugment_is_drawn_in_the_loader_and_left_to_the_device(root):
    mra = MRAugmentConfig(enabled=True, schedule=ALWAYS)
    plain = SNUSliceDataset(root, "train")
    augmented = SliceAugmenter(AugmentConfig(mraugment=mra), seed=3).wrap(plain)
    drawn = [augmented[i] for i in range(len(plain))]
    assert all(sample.image_transform.any() for sample in drawn), "p = 1: every slice draws a transform"
    for sample, raw in zip(drawn, plain, strict=True):
        assert torch.equal(sample.kspace, raw.kspace) and torch.equal(sample.target, raw.target)
    assert len({tuple(sample.image_transform.tolist()) for sample in drawn}) == len(drawn), "one draw per slice"
    again = SliceAugmenter(AugmentConfig(mraugment=mra), seed=3).wrap(plain)
    assert all(torch.equal(again[i].image_transform, drawn[i].image_transform) for i in range(len(plain)))


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
    assert expected[0].image_transform.any() and not plain[0].image_transform.any()
    loader = DataLoader(torch.utils.data.Subset(ds, range(4)), batch_size=None, num_workers=2)
    for got, want in zip(loader, expected, strict=True):
        assert torch.equal(got.image_transform, want.image_transform) and torch.equal(got.mask, want.mask)
