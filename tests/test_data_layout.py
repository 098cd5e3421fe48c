"""Layout detection of a data root and the dataset `open_split` returns for each layout."""

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from data import DataFormatError, FastMRISliceDataset, SNUSliceDataset, detect_layout, open_split
from data.batch import BatchPreparation
from data.layout import find_submission_files, submission_layouts
from data.masks import make_mask
from tests.test_data_fastmri import write_fastmri_root


def write_snu_root(root: Path) -> Path:
    """Two SNU train files of different coil counts and one val file, written directly with h5py."""
    rng = np.random.default_rng(0)
    for split, name, coils in (("train", "brain_acc4_1.h5", 2), ("train", "knee_acc8_1.h5", 5),
                               ("val", "brain_acc8_2.h5", 3)):
        for sub in ("kspace", "image"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        shape = (2, coils, 32, 24)
        with h5py.File(root / split / "kspace" / name, "w") as f:
            f["kspace"] = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
            f["mask"] = make_mask("equispaced", 24, int(name.split("_acc")[1][0]), 0.08, 0).astype(np.float32)
        with h5py.File(root / split / "image" / name, "w") as f:
            f["image_label"] = rng.uniform(0, 1e-4, (2, 16, 16)).astype(np.float32)
            f.attrs["max"] = 1e-4
    return root


def test_detects_each_layout(tmp_path):
    assert detect_layout(write_snu_root(tmp_path / "snu")) == "snu"
    assert detect_layout(write_fastmri_root(tmp_path / "fastmri")) == "fastmri"
    assert detect_layout(write_fastmri_root(tmp_path / "plain", prefix="")) == "fastmri"


def test_open_split_returns_the_layouts_dataset(tmp_path):
    snu = open_split(write_snu_root(tmp_path / "snu"), "train")
    assert isinstance(snu, SNUSliceDataset) and len(snu) == 4
    fastmri = open_split(write_fastmri_root(tmp_path / "fastmri"), "train", accelerations=(4,),
                         center_fractions=(0.08,), seed=3)
    assert isinstance(fastmri, FastMRISliceDataset) and set(fastmri.categories) == {"knee_x4", "brain_x4"}
    assert isinstance(open_split(tmp_path / "fastmri", "test"), FastMRISliceDataset)


def test_both_datasets_answer_the_tuners_questions_alike(tmp_path):
    for dataset in (open_split(write_snu_root(tmp_path / "snu"), "train"),
                    open_split(write_fastmri_root(tmp_path / "fastmri"), "train")):
        shapes = [tuple(dataset[i].kspace.shape[:3]) for i in range(len(dataset))]
        largest = dataset.largest_slice()
        assert np.prod(shapes[largest]) == max(np.prod(s) for s in shapes)
        assert len(dataset.categories) == len(dataset)
        assert [dataset[i].category for i in range(len(dataset))] == dataset.categories
        assert sorted({dataset[i].fname for i in range(len(dataset))}) == sorted(p.name for p in dataset.files)


@pytest.mark.parametrize(
    ("entries", "found"),
    [
        (["scans/", "notes.txt"], r"found notes\.txt, scans/\)"),
        (["train/images/"], r"found train/ \[images/\]\)"),
        ([], r"found an empty directory\)"),
    ],
)
def test_a_root_of_the_wrong_shape_says_what_it_found_and_what_is_accepted(tmp_path, entries, found):
    root = tmp_path / "data"
    root.mkdir()
    for entry in entries:
        if entry.endswith("/"):
            (root / entry).mkdir(parents=True)
        else:
            (root / entry).write_text("x")
    with pytest.raises(DataFormatError) as info:
        detect_layout(root)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{root}: not a data root (")
    assert re.search(found, message), message
    assert "SNU layout ROOT/{train,val}/{kspace,image}/*.h5" in message
    assert "fastMRI layout ROOT/multicoil_{train,val}/*.h5" in message
    with pytest.raises(DataFormatError, match="not a data root"):
        open_split(root, "train")


def test_missing_file_and_mixed_roots(tmp_path):
    with pytest.raises(DataFormatError, match="no such directory; expected the SNU layout"):
        detect_layout(tmp_path / "absent")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataFormatError, match="not a directory"):
        detect_layout(tmp_path / "afile")
    mixed = write_fastmri_root(write_snu_root(tmp_path / "mixed"))
    with pytest.raises(DataFormatError, match="holds both layouts"):
        detect_layout(mixed)


def test_many_entries_are_abbreviated(tmp_path):
    for i in range(12):
        (tmp_path / f"f{i:02d}.txt").write_text("x")
    with pytest.raises(DataFormatError, match=r"f07\.txt, \.\.\. 4 more\)"):
        detect_layout(tmp_path)


def test_open_split_passes_a_transform_to_either_layout(tmp_path):
    seen = []

    def transform(raw, index):
        seen.append((raw.kspace.shape, raw.mask.dtype.kind, raw.mask.shape, index))
        keep = np.zeros_like(raw.mask)
        keep[: raw.mask.size // 2] = True  # only the left half of k-space
        return raw._replace(mask=keep, target=raw.target[::-1], max_value=2 * raw.max_value,
                            category=raw.category.replace("_x8", "_x4"))

    for root in (write_snu_root(tmp_path / "snu"), write_fastmri_root(tmp_path / "fastmri")):
        plain, transformed = open_split(root, "train"), open_split(root, "train", transform=transform)
        seen.clear()
        index = len(plain) - 1
        before, after = plain[-1], transformed[-1]
        (shape, kind, width, given_index), = seen
        assert shape == tuple(before.kspace.shape[:3]) and kind == "b" and given_index == index
        assert after.mask.flatten()[: width[0] // 2].all() and not after.mask.flatten()[width[0] // 2 :].any()
        seen_by_model = BatchPreparation(train=False)(default_collate([after]), torch.device("cpu")).masked_kspace
        assert not seen_by_model[0, :, :, width[0] // 2 :].any()
        np.testing.assert_array_equal(after.target.numpy(), before.target.numpy()[::-1])
        assert after.max_value == 2 * before.max_value and after.category == before.category.replace("_x8", "_x4")


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


@pytest.mark.parametrize("prefix", ["", "leaderboard/"])
def test_leaderboard_folders_give_the_submission_path_and_acceleration(tmp_path, prefix):
    """DATA/acc{4,8}/<kind>/ (or DATA/leaderboard/acc{4,8}/<kind>/): each file is submitted as accN/<name>
    with the folder's acceleration, whatever the name says; files of the other kind are not listed."""
    _touch(tmp_path, *(f"{prefix}{name}" for name in ("acc4/kspace/brain_test2.h5", "acc4/kspace/brain_test1.h5",
                                                        "acc8/kspace/knee_acc4_1.h5", "acc8/image/knee_acc4_1.h5")))
    found = find_submission_files(tmp_path, "kspace")
    assert [(f.path.relative_to(tmp_path).as_posix(), f.submission.as_posix(), f.acceleration) for f in found] == [
        (f"{prefix}acc4/kspace/brain_test1.h5", "acc4/brain_test1.h5", 4),
        (f"{prefix}acc4/kspace/brain_test2.h5", "acc4/brain_test2.h5", 4),
        (f"{prefix}acc8/kspace/knee_acc4_1.h5", "acc8/knee_acc4_1.h5", 8),
    ]
    assert found[2].beside("image") == tmp_path / f"{prefix}acc8/image/knee_acc4_1.h5"


def test_without_leaderboard_folders_the_kind_folder_then_the_folder_itself(tmp_path):
    """DATA/<kind>/*.h5 when that folder exists, else DATA/*.h5, each submitted as <name>; none: []."""
    _touch(tmp_path, "val/kspace/knee_acc8_2.h5", "val/image/knee_acc8_2.h5", "val/stray.h5")
    found = find_submission_files(tmp_path / "val", "image")
    assert [(f.path, f.submission, f.acceleration) for f in found] == [
        (tmp_path / "val/image/knee_acc8_2.h5", Path("knee_acc8_2.h5"), None)]
    assert found[0].beside("kspace") == tmp_path / "val/kspace/knee_acc8_2.h5"
    assert [f.path for f in find_submission_files(tmp_path / "val" / "kspace", "kspace")] == [
        tmp_path / "val/kspace/knee_acc8_2.h5"]
    assert find_submission_files(tmp_path, "kspace") == []
    assert "leaderboard/acc{4,8}/image/*.h5" in submission_layouts("image")
