"""Mask augmentation (families, seeding, the fully-sampled check), the mask bank and duplication indexing."""

import os

import h5py
import numpy as np
import pytest

from data import DataFormatError, center_run, make_mask, nominal_acceleration
from data.augment import (
    AugmentConfig,
    DuplicatedIndex,
    MaskAugmentConfig,
    MaskBank,
    ProbabilitySchedule,
    SliceAugmenter,
    build_mask_bank,
    draw_family_mask,
    is_fully_sampled,
    unsampled_columns,
)
from data.snu import RawSlice

WIDTH = 96


def full_kspace(width: int = WIDTH, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (2, 16, width)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_fully_sampled_check():
    kspace = full_kspace()
    assert is_fully_sampled(kspace) and unsampled_columns(kspace).size == 0
    kspace[:, :, [3, 50]] = 0
    kspace[0, 5, 7] = 0  # one zero sample does not make a column unsampled
    assert not is_fully_sampled(kspace) and unsampled_columns(kspace).tolist() == [3, 50]
    assert not is_fully_sampled(full_kspace() * make_mask("equispaced", WIDTH, 4, 0.08, 0))


def test_zero_padded_edges_are_not_undersampling():
    # fastMRI knee k-space: fully sampled between the acquired limits, zeros padded out to the width.
    padded = full_kspace()
    padded[..., :4] = 0
    padded[..., -3:] = 0
    assert is_fully_sampled(padded) and unsampled_columns(padded).size == 0
    padded[..., 20] = 0
    assert unsampled_columns(padded).tolist() == [20]
    undersampled = full_kspace() * make_mask("equispaced", WIDTH, 4, 0.08, 1)
    undersampled[..., :2] = 0
    assert not is_fully_sampled(undersampled)
    assert unsampled_columns(np.zeros_like(padded)).size == WIDTH


def test_family_draws_follow_kinds_weights_and_centre_fraction():
    config = MaskAugmentConfig(kinds=("equispaced", "random"), weights=(1.0, 0.0), center_fraction=(0.1, 0.1))
    for seed in range(5):
        mask = draw_family_mask(config, WIDTH, 4, np.random.default_rng(seed))
        start, length = center_run(mask)
        assert length >= round(0.1 * WIDTH)
        outside = np.flatnonzero(np.concatenate([mask[:start], np.zeros(length, bool), mask[start + length :]]))
        assert len(set(outside % 4)) == 1 and outside.size >= WIDTH // 4 - length // 4 - 1  # every 4th column
    default = MaskAugmentConfig()
    for acceleration in (4, 8):
        for seed in range(10):
            mask = draw_family_mask(default, 396, acceleration, np.random.default_rng(seed))
            assert nominal_acceleration(mask, (4, 8)) == acceleration


def augmenter(p: float = 1.0, seed: int = 0, **mask_fields) -> SliceAugmenter:
    schedule = ProbabilitySchedule(p_max=p)
    return SliceAugmenter(AugmentConfig(mask=MaskAugmentConfig(enabled=True, schedule=schedule, **mask_fields)),
                          seed=seed)


def test_mask_augmentation_keeps_the_slice_acceleration_and_is_seeded():
    kspace, target = full_kspace(396), np.ones((4, 4), np.float32)
    own = make_mask("equispaced", 396, 8, 0.08, 0)

    def draw(aug, epoch, key):
        return aug.apply(RawSlice(kspace, own, target, 1.0, "brain_x8"), epoch=epoch, slice_key=key)

    masks = {(e, k): draw(augmenter(), e, k).mask for e in range(3) for k in range(4)}
    assert all(nominal_acceleration(m, (4, 8)) == 8 for m in masks.values())
    assert all(draw(augmenter(), e, k).mask.tolist() == m.tolist() for (e, k), m in masks.items())
    assert len({m.tobytes() for m in masks.values()}) > 6  # epochs and slices draw differently
    assert any(not np.array_equal(draw(augmenter(seed=1), 0, k).mask, masks[(0, k)]) for k in range(4))
    out = draw(augmenter(p=0.0), 2, 2)
    assert np.array_equal(out.mask, own) and out.kspace is kspace and out.category == "brain_x8"


def test_mask_augmentation_fires_at_the_scheduled_rate():
    kspace, target = full_kspace(), np.ones((4, 4), np.float32)
    own = make_mask("equispaced", WIDTH, 4, 0.08, 0)
    aug = augmenter(p=0.3, kinds=("random",))
    fired = sum(not np.array_equal(aug.apply(RawSlice(kspace, own, target, 1.0, "knee_x4"), epoch=0, slice_key=k).mask,
                                   own) for k in range(200))
    assert 40 <= fired <= 80


def test_mask_augmentation_refuses_undersampled_kspace():
    kspace = full_kspace() * make_mask("equispaced", WIDTH, 4, 0.08, 0)
    with pytest.raises(DataFormatError, match="knee_x4 slice 7.*fully sampled.*all zero"):
        augmenter().apply(RawSlice(kspace, np.ones(WIDTH, bool), np.ones((4, 4)), 1.0, "knee_x4"), epoch=0,
                          slice_key=7)
    # An augmenter with nothing configured asks nothing of the data.
    SliceAugmenter(AugmentConfig()).apply(RawSlice(kspace, np.ones(WIDTH, bool), np.ones((4, 4)), 1.0, "knee_x4"),
                                          epoch=0, slice_key=7)


def write_kspace_file(directory, name: str, mask: np.ndarray) -> None:
    with h5py.File(directory / name, "w") as f:
        f.create_dataset("kspace", data=np.zeros((1, 1, 2, mask.size), np.complex64))
        f.create_dataset("mask", data=mask.astype(np.float32))


@pytest.fixture
def bank_files(tmp_path):
    masks = {
        "brain_acc4_1.h5": make_mask("equispaced", 40, 4, 0.08, 0),
        "brain_acc4_2.h5": make_mask("equispaced", 40, 4, 0.08, 3),
        "brain_acc8_1.h5": make_mask("equispaced", 40, 8, 0.08, 1),
        "knee_acc8_1.h5": make_mask("equispaced", 36, 8, 0.08, 2),
    }
    for name, mask in masks.items():
        write_kspace_file(tmp_path, name, mask)
    return tmp_path, masks


def test_bank_groups_masks_by_organ_acceleration_and_width(bank_files):
    directory, masks = bank_files
    bank = build_mask_bank(directory.glob("*.h5"))
    assert bank.keys() == [("brain", 4, 40), ("brain", 8, 40), ("knee", 8, 36)] and len(bank) == 4
    assert bank.masks("brain", 4, 40).tolist() == [masks["brain_acc4_1.h5"].tolist(), masks["brain_acc4_2.h5"].tolist()]
    assert bank.masks("knee", 4, 36).shape == (0, 36)
    rng = np.random.default_rng(0)
    drawn = {bank.draw("brain", 4, 40, rng).tobytes() for _ in range(20)}
    assert drawn == {masks["brain_acc4_1.h5"].tobytes(), masks["brain_acc4_2.h5"].tobytes()}
    assert np.array_equal(bank.draw("knee", 8, 36, rng), masks["knee_acc8_1.h5"])


def test_bank_falls_back_to_a_generated_challenge_mask(bank_files):
    bank = build_mask_bank(bank_files[0].glob("*.h5"))
    for organ, acceleration, width in (("knee", 4, 368), ("brain", 8, 392)):
        mask = bank.draw(organ, acceleration, width, np.random.default_rng(5))
        start, length = center_run(mask)
        assert mask.shape == (width,) and length >= round(0.08 * width)
        assert start == (width - round(0.08 * width) + 1) // 2 or length > round(0.08 * width)
        assert nominal_acceleration(mask, (4, 8)) == acceleration
    assert MaskBank().draw("brain", 4, 396, np.random.default_rng(0)).sum() == 123  # the count in docs/masks.md


def test_bank_save_load_atomic_and_no_overwrite(bank_files, tmp_path):
    bank = build_mask_bank(bank_files[0].glob("*.h5"))
    path = tmp_path / "bank.npz"
    assert bank.save(path) == path
    loaded = MaskBank.load(path)
    assert loaded.keys() == bank.keys()
    assert all(np.array_equal(loaded.masks(*key), bank.masks(*key)) for key in bank.keys())
    with pytest.raises(FileExistsError, match="overwrite"):
        MaskBank().save(path)
    assert MaskBank.load(path).keys() == bank.keys()  # untouched
    MaskBank().save(path, overwrite=True)
    assert len(MaskBank.load(path)) == 0
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(bank_files[0]))  # no temporary files left
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="junk.npz"):
        MaskBank.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "odd.npz", brain_x4=np.ones((1, 4)))
    with pytest.raises(DataFormatError, match="unexpected entry 'brain_x4'"):
        MaskBank.load(tmp_path / "odd.npz")


def test_bank_rejects_bad_files(tmp_path):
    write_kspace_file(tmp_path, "brain_acc4_1.h5", np.zeros(8))
    with pytest.raises(DataFormatError, match="brain_acc4_1.h5"):
        build_mask_bank([tmp_path / "brain_acc4_1.h5"])
    (tmp_path / "knee_acc4_1.h5").write_bytes(b"nope")
    with pytest.raises(DataFormatError, match="knee_acc4_1.h5.*HDF5"):
        build_mask_bank([tmp_path / "knee_acc4_1.h5"])


def test_duplicated_index_is_copy_major():
    index = DuplicatedIndex(3)
    assert len(index) == 6 and index.accelerations == (4, 8)
    assert [index[i] for i in range(6)] == [(0, 4), (1, 4), (2, 4), (0, 8), (1, 8), (2, 8)]
    assert index[-1] == (2, 8)
    with pytest.raises(IndexError):
        index[6]
    with pytest.raises(ValueError, match="accelerations"):
        DuplicatedIndex(3, (4, 4))
