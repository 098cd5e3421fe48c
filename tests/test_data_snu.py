"""SNU layout reader: reading, categories, collation, and validation errors on hand-written h5 files."""

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data import DataFormatError, SNUSliceDataset, VarNetSample, category_of, make_mask
from data.snu import read_image_header, read_kspace_header

SLICES, COILS, HEIGHT, WIDTH, TARGET = 3, 2, 12, 10, (6, 8)


def write_pair(
    root: Path,
    name: str,
    *,
    split: str = "train",
    mask: np.ndarray | None = None,
    kspace: np.ndarray | None = None,
    label: np.ndarray | None = None,
    max_value: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write a k-space / image file pair in the SNU layout; returns (kspace, mask, label)."""
    rng = np.random.default_rng(seed)
    if kspace is None:
        shape = (SLICES, COILS, HEIGHT, WIDTH)
        kspace = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    if mask is None:
        mask = np.zeros(WIDTH, dtype=np.float32)
        mask[::2] = 1
    if label is None:
        label = rng.random((kspace.shape[0], *TARGET), dtype=np.float32)
    for sub in ("kspace", "image"):
        (root / split / sub).mkdir(parents=True, exist_ok=True)
    with h5py.File(root / split / "kspace" / name, "w") as f:
        f.create_dataset("kspace", data=kspace)
        f.create_dataset("mask", data=mask)
    with h5py.File(root / split / "image" / name, "w") as f:
        f.create_dataset("image_label", data=label)
        f.attrs["max"] = float(label.max()) if max_value is None else max_value
    return kspace, mask, label


def test_reads_slices_with_shapes_dtypes_and_values(tmp_path):
    kspace, mask, label = write_pair(tmp_path, "brain_acc4_1.h5")
    write_pair(tmp_path, "knee_acc8_2.h5", seed=1, mask=np.ones(WIDTH, dtype=bool))
    ds = SNUSliceDataset(tmp_path, "train")
    assert len(ds) == 2 * SLICES
    assert [f.name for f in ds.files] == ["brain_acc4_1.h5", "knee_acc8_2.h5"]
    assert ds.categories == ["brain_x4"] * SLICES + ["knee_x8"] * SLICES

    sample = ds[1]
    assert isinstance(sample, VarNetSample)
    assert sample.kspace.shape == (COILS, HEIGHT, WIDTH, 2)
    assert sample.kspace.dtype == torch.float32
    # As stored: the mask is applied where the batch meets the model (data.batch).
    assert np.array_equal(sample.kspace[..., 0].numpy(), kspace[1].real)
    assert np.array_equal(sample.kspace[..., 1].numpy(), kspace[1].imag)
    assert not sample.image_transform.any()
    assert sample.mask.shape == (1, 1, WIDTH, 1) and sample.mask.dtype == torch.bool
    assert sample.mask.reshape(-1).tolist() == mask.astype(bool).tolist()
    assert sample.target.dtype == torch.float32 and np.array_equal(sample.target.numpy(), label[1])
    assert sample.max_value == pytest.approx(float(label.max()))
    assert (sample.category, sample.fname, sample.slice_idx) == ("brain_x4", "brain_acc4_1.h5", 1)
    assert ds[-1].fname == "knee_acc8_2.h5" and ds[-1].slice_idx == SLICES - 1
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_default_collate_batches_samples_and_dataset_pickles(tmp_path):
    write_pair(tmp_path, "brain_acc4_1.h5")
    ds = pickle.loads(pickle.dumps(SNUSliceDataset(tmp_path, "train")))
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert isinstance(batch, VarNetSample)
    assert batch.kspace.shape == (2, COILS, HEIGHT, WIDTH, 2)
    assert batch.mask.shape == (2, 1, 1, WIDTH, 1)
    assert batch.target.shape == (2, *TARGET)
    assert list(batch.category) == ["brain_x4", "brain_x4"]  # a tuple, as torch collates it
    assert batch.slice_idx.tolist() == [0, 1]
    assert batch.max_value.shape == (2,)


def test_category_from_name_mask_and_default():
    r8 = make_mask("equispaced", 396, 8, 0.08, 0)
    r4 = make_mask("equispaced", 396, 4, 0.08, 0)
    assert category_of("knee_acc4_12.h5", r8) == "knee_x4"  # the name wins over the mask
    assert category_of("/some/dir/brain_test3.h5", r8) == "brain_x8"
    assert category_of("brain_test3.h5", r4) == "brain_x4"
    assert category_of("acc8_1.h5", r4, "knee") == "knee_x8"
    with pytest.raises(DataFormatError, match="scan_7.h5.*organ"):
        category_of("scan_7.h5", r4)
    with pytest.raises(DataFormatError, match="brain_acc5_1.h5.*acc5"):
        category_of("brain_acc5_1.h5", r4)


def test_organ_default_in_dataset(tmp_path):
    mask = make_mask("equispaced", WIDTH, 4, 0.08, 0).astype(np.float32)
    write_pair(tmp_path, "scan_1.h5", mask=mask)
    with pytest.raises(DataFormatError, match="scan_1.h5"):
        SNUSliceDataset(tmp_path, "train")
    assert SNUSliceDataset(tmp_path, "train", organ_default="knee").categories[0] == "knee_x4"
    with pytest.raises(ValueError, match="organ_default"):
        SNUSliceDataset(tmp_path, "train", organ_default="spine")


def _rewrite(path: Path, key: str, data: np.ndarray | None) -> None:
    with h5py.File(path, "a") as f:
        del f[key]
        if data is not None:
            f.create_dataset(key, data=data)


def _missing_image(root: Path) -> None:
    (root / "train" / "image" / "brain_acc4_1.h5").unlink()


def _set_max(value):
    def change(root: Path) -> None:
        with h5py.File(root / "train" / "image" / "brain_acc4_1.h5", "a") as f:
            if value is None:
                del f.attrs["max"]
            else:
                f.attrs["max"] = value

    return change


KSPACE = Path("train/kspace/brain_acc4_1.h5")
IMAGE = Path("train/image/brain_acc4_1.h5")
BAD_FILES = {
    "missing image pair": (_missing_image, "no image pair"),
    "missing mask": (lambda r: _rewrite(r / KSPACE, "mask", None), "missing dataset 'mask'"),
    "missing kspace": (lambda r: _rewrite(r / KSPACE, "kspace", None), "missing dataset 'kspace'"),
    "wrong mask length": (lambda r: _rewrite(r / KSPACE, "mask", np.ones(WIDTH + 1)), r"shape \(10,\)"),
    "non-binary mask": (lambda r: _rewrite(r / KSPACE, "mask", np.full(WIDTH, 0.5)), "only 0 and 1"),
    "empty mask": (lambda r: _rewrite(r / KSPACE, "mask", np.zeros(WIDTH)), "no column"),
    "real kspace": (
        lambda r: _rewrite(r / KSPACE, "kspace", np.zeros((SLICES, COILS, HEIGHT, WIDTH), np.float32)),
        "complex",
    ),
    "3-d kspace": (
        lambda r: _rewrite(r / KSPACE, "kspace", np.zeros((COILS, HEIGHT, WIDTH), np.complex64)),
        "complex",
    ),
    "missing label": (lambda r: _rewrite(r / IMAGE, "image_label", None), "missing dataset 'image_label'"),
    "slice mismatch": (
        lambda r: _rewrite(r / IMAGE, "image_label", np.ones((SLICES + 1, *TARGET), np.float32)),
        "slices",
    ),
    "complex label": (
        lambda r: _rewrite(r / IMAGE, "image_label", np.ones((SLICES, *TARGET), np.complex64)),
        "real floating",
    ),
    "missing max": (_set_max(None), "attribute 'max'"),
    "zero max": (_set_max(0.0), "> 0"),
    "array max": (_set_max(np.ones(2)), "one number"),
    "not hdf5": (lambda r: (r / KSPACE).write_bytes(b"not an hdf5 file"), "not a readable HDF5"),
}


@pytest.mark.parametrize("problem", sorted(BAD_FILES))
def test_bad_file_raises_data_format_error_naming_it(tmp_path, problem):
    write_pair(tmp_path, "brain_acc4_1.h5")
    write_pair(tmp_path, "knee_acc4_1.h5")
    damage, message = BAD_FILES[problem]
    damage(tmp_path)
    with pytest.raises(DataFormatError, match=message) as info:
        SNUSliceDataset(tmp_path, "train")
    assert "brain_acc4_1.h5" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bool_mask_and_extra_image_files_are_accepted(tmp_path):
    write_pair(tmp_path, "brain_acc8_1.h5", mask=np.arange(WIDTH) % 3 == 0)
    write_pair(tmp_path, "knee_acc8_1.h5")
    (tmp_path / "train" / "kspace" / "knee_acc8_1.h5").unlink()  # image without k-space is ignored
    ds = SNUSliceDataset(tmp_path, "train")
    assert len(ds) == SLICES and ds[0].mask.reshape(-1).sum() == 4


def test_bad_directories(tmp_path):
    with pytest.raises(DataFormatError, match="kspace.*not found"):
        SNUSliceDataset(tmp_path, "train")
    (tmp_path / "val" / "kspace").mkdir(parents=True)
    (tmp_path / "val" / "image").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="no .h5 files"):
        SNUSliceDataset(tmp_path, "val")


def test_header_readers_give_counts_shapes_mask_and_data_range_without_the_arrays(tmp_path):
    """read_kspace_header: (S, (C, H, W), mask (W,) bool); read_image_header: (S, (h, w), max), and a
    DataFormatError naming the file when its slice count differs from the k-space file's."""
    mask = np.zeros(WIDTH, np.float32)
    mask[1::3] = 1
    write_pair(tmp_path, "brain_acc4_1.h5", mask=mask, max_value=2.5)
    kspace = read_kspace_header(tmp_path / "train" / "kspace" / "brain_acc4_1.h5")
    assert (kspace.num_slices, kspace.shape) == (SLICES, (COILS, HEIGHT, WIDTH))
    assert kspace.mask.dtype == bool and kspace.mask.tolist() == mask.astype(bool).tolist()
    image = tmp_path / "train" / "image" / "brain_acc4_1.h5"
    assert read_image_header(image) == (SLICES, TARGET, 2.5)
    assert read_image_header(image, SLICES).max_value == 2.5
    with pytest.raises(DataFormatError, match=f"brain_acc4_1.h5: 'image_label' has {SLICES} slices, its k-space"):
        read_image_header(image, SLICES + 1)
    (tmp_path / "truncated.h5").write_bytes(image.read_bytes()[:100])
    with pytest.raises(DataFormatError, match="truncated.h5: not a readable HDF5 file"):
        read_image_header(tmp_path / "truncated.h5")
