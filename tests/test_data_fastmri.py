"""The fastMRI multicoil reader: header parsing, targets, on-the-fly masks, test files, validation."""

import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from data import DataFormatError, FastMRISliceDataset, nominal_acceleration, parse_ismrmrd_header
from data.batch import BatchPreparation
from data.fastmri import organ_of
from data.masks import make_mask

KNEE = "file1000001.h5"
BRAIN = "file_brain_AXT2_200_2000019.h5"
KNEE_TEST = "file1000002.h5"


def header_xml(encoded: tuple[int, int], recon: tuple[int, int], acquired: tuple[int, int] | None,
               namespace: bool = True) -> bytes:
    """An ISMRMRD header as fastMRI files carry it; ``acquired`` = [start, stop) phase-encode columns."""
    limits = ""
    if acquired is not None:
        # fastMRI's rule: start = encoded y // 2 - center, stop = start + maximum + 1.
        center, maximum = encoded[1] // 2 - acquired[0], acquired[1] - acquired[0] - 1
        limits = (f"<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{maximum}</maximum>"
                  f"<center>{center}</center></kspace_encoding_step_1></encodingLimits>")
    xmlns = ' xmlns="http://www.ismrm.org/ISMRMRD"' if namespace else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<ismrmrdHeader{xmlns}>'
        "<acquisitionSystemInformation><systemVendor>SIEMENS</systemVendor>"
        "<systemFieldStrength_T>2.89362</systemFieldStrength_T></acquisitionSystemInformation>"
        f"<encoding><encodedSpace><matrixSize><x>{encoded[0]}</x><y>{encoded[1]}</y><z>1</z></matrixSize>"
        "<fieldOfView_mm><x>280</x><y>140</y><z>4.5</z></fieldOfView_mm></encodedSpace>"
        f"<reconSpace><matrixSize><x>{recon[0]}</x><y>{recon[1]}</y><z>1</z></matrixSize></reconSpace>"
        f"<trajectory>cartesian</trajectory>{limits}</encoding></ismrmrdHeader>"
    ).encode()


def write_volume(path: Path, shape: tuple[int, int, int, int], recon: tuple[int, int], *,
                 acquired: tuple[int, int] | None = None, target: bool = True, max_attr: bool = True,
                 mask: np.ndarray | None = None, header: bool = True, seed: int = 0) -> None:
    """A small fastMRI-format volume: kspace (S, C, H, W), zero outside ``acquired`` columns."""
    rng = np.random.default_rng(seed)
    kspace = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    if acquired is not None:
        kspace[..., : acquired[0]] = kspace[..., acquired[1] :] = 0
    if mask is not None:
        kspace *= mask
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
        if target:
            f["reconstruction_rss"] = rng.uniform(0, 3e-4, (shape[0], *recon)).astype(np.float32)
            if max_attr:
                f.attrs["max"] = 5e-4
        if mask is not None:
            f["mask"] = mask.astype(np.float32)
        if header:
            f["ismrmrd_header"] = header_xml(shape[2:], recon, acquired)
        f.attrs["acquisition"] = "AXT2" if "brain" in path.name else "CORPD_FBK"
        f.attrs["norm"] = 0.01


def write_fastmri_root(root: Path, prefix: str = "multicoil_") -> Path:
    """train: a knee volume with padded columns and a brain volume without 'max'; test: one knee file."""
    write_volume(root / f"{prefix}train" / KNEE, (3, 4, 48, 40), (24, 24), acquired=(4, 36))
    write_volume(root / f"{prefix}train" / BRAIN, (2, 6, 56, 44), (28, 28), max_attr=False, seed=1)
    test_mask = make_mask("equispaced", 40, 8, 0.08, seed=3)
    write_volume(root / f"{prefix}test" / KNEE_TEST, (2, 4, 48, 40), (24, 24), target=False, mask=test_mask,
                 acquired=(4, 36), seed=2)
    return root


@pytest.fixture
def root(tmp_path) -> Path:
    return write_fastmri_root(tmp_path / "fastmri")


def test_header_sizes_and_acquired_columns():
    header = parse_ismrmrd_header(header_xml((640, 368), (320, 320), (18, 350)))
    assert header.encoded_shape == (640, 368, 1) and header.recon_shape == (320, 320, 1)
    assert header.acquired_columns == (18, 350)
    plain = parse_ismrmrd_header(header_xml((640, 320), (320, 320), None, namespace=False).decode())
    assert plain.encoded_shape == (640, 320, 1) and plain.acquired_columns is None
    with pytest.raises(DataFormatError, match="vol.h5: ismrmrd_header: not valid XML"):
        parse_ismrmrd_header(b"<ismrmrdHeader>", "vol.h5: ismrmrd_header")
    with pytest.raises(DataFormatError, match=r"reconSpace/matrixSize"):
        parse_ismrmrd_header(b"<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>4</x><y>4</y><z>1</z>"
                             b"</matrixSize></encodedSpace></encoding></ismrmrdHeader>")


def test_organ_from_the_file_name():
    assert organ_of(BRAIN) == "brain" and organ_of(KNEE) == "knee" and organ_of("file_knee_x.h5") == "knee"


def test_train_split_targets_max_and_categories(root):
    ds = FastMRISliceDataset(root, "train")
    assert [p.name for p in ds.files] == [KNEE, BRAIN] and len(ds) == 5
    assert [c.split("_")[0] for c in ds.categories] == ["knee"] * 3 + ["brain"] * 2
    with h5py.File(root / "multicoil_train" / BRAIN, "r") as f:
        brain_target = f["reconstruction_rss"][()]
    for i, sample in enumerate(ds):
        coils, height, width = (4, 48, 40) if i < 3 else (6, 56, 44)
        assert sample.kspace.shape == (coils, height, width, 2)
        assert sample.mask.shape == (1, 1, width, 1) and sample.mask.dtype == torch.bool
        assert sample.target.shape == ((24, 24) if i < 3 else (28, 28))
        assert sample.category == ds.categories[i] and sample.slice_idx == (i if i < 3 else i - 3)
        assert ds.recon_shape(i) == tuple(sample.target.shape)
    assert ds[0].max_value == 5e-4 and ds[0].fname == KNEE
    assert ds[4].max_value == pytest.approx(float(brain_target.max()))  # no 'max' attribute: the volume's
    np.testing.assert_array_equal(ds[4].target.numpy(), brain_target[1])


def test_generated_masks_are_seeded_per_file_and_slice(root, tmp_path):
    ds = FastMRISliceDataset(root, "train")
    masks = [ds[i].mask.flatten().numpy() for i in range(len(ds))]
    for i, mask in enumerate(masks):
        acc = int(ds.categories[i].split("_x")[1])
        assert nominal_acceleration(mask, (4, 8)) == acc
        kspace = BatchPreparation(train=False)(default_collate([ds[i]]), torch.device("cpu")).masked_kspace[0]
        assert not kspace[:, :, ~mask].any()
        if i < 3:  # the knee's zero-padded columns are never sampled
            assert not mask[:4].any() and not mask[36:].any()
    assert len({m.tobytes() for m in masks}) > 1
    again = FastMRISliceDataset(root, "train")
    assert all(np.array_equal(m, again[i].mask.flatten().numpy()) for i, m in enumerate(masks))
    assert again.categories == ds.categories
    # Seeded by the file name, not its path: a copy elsewhere, in a plain split dir, masks alike.
    moved = tmp_path / "moved"
    shutil.copytree(root / "multicoil_train", moved / "train")
    plain = FastMRISliceDataset(moved, "train")
    assert all(np.array_equal(m, plain[i].mask.flatten().numpy()) for i, m in enumerate(masks))
    other = FastMRISliceDataset(root, "train", seed=1)
    assert any(not np.array_equal(m, other[i].mask.flatten().numpy()) for i, m in enumerate(masks))


def test_mask_options(root):
    ds = FastMRISliceDataset(root, "train", mask_kind="random", accelerations=(8,), center_fractions=(0.04,))
    assert {c.split("_x")[1] for c in ds.categories} == {"8"}
    assert ds[1].mask.sum() < 40 / 2
    for options in ({"mask_kind": "poisson"}, {"accelerations": (6,)}, {"accelerations": ()},
                    {"center_fractions": (0.08,)}, {"center_fractions": (0.0, 0.08)}, {"seed": -1}):
        with pytest.raises(ValueError):
            FastMRISliceDataset(root, "train", **options)


def test_test_files_keep_their_mask_and_have_no_target(root):
    ds = FastMRISliceDataset(root, "test")
    with h5py.File(root / "multicoil_test" / KNEE_TEST, "r") as f:
        stored = f["mask"][()].astype(bool)
    assert ds.categories == ["knee_x8", "knee_x8"]
    sample = ds[1]
    assert np.array_equal(sample.mask.flatten().numpy(), stored)
    assert sample.target.shape == (0, 0) and math.isnan(sample.max_value)
    assert ds.recon_shape(1) == (24, 24)


def test_largest_slice_is_the_largest_volumes_middle(root):
    ds = FastMRISliceDataset(root, "train")
    assert ds.largest_slice() == 4  # the brain volume (6 x 56 x 44) follows the knee's 3 slices
    assert ds[ds.largest_slice()].fname == BRAIN


def _rewrite(path: Path, key: str, value=None) -> None:
    with h5py.File(path, "a") as f:
        del f[key]
        if value is not None:
            f[key] = value


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: _rewrite(p, "kspace"), "missing dataset 'kspace'"),
        (lambda p: _rewrite(p, "kspace", np.zeros((3, 4, 48, 40), np.float32)), "'kspace' must be non-empty complex"),
        (lambda p: _rewrite(p, "reconstruction_rss", np.zeros((2, 24, 24), np.float32)),
         r"'reconstruction_rss' must be real floating \(3, h, w\)"),
        (lambda p: _rewrite(p, "reconstruction_rss"), "neither 'reconstruction_rss'"),
        (lambda p: _rewrite(p, "ismrmrd_header", header_xml((48, 40), (24, 24), (30, 60))), "acquired columns"),
        (lambda p: _rewrite(p, "ismrmrd_header", b"<oops"), "not valid XML"),
        (lambda p: p.write_bytes(b"not hdf5"), "not a readable HDF5 file"),
    ],
)
def test_bad_files_are_named(root, damage, message):
    damage(root / "multicoil_train" / KNEE)
    with pytest.raises(DataFormatError, match=f"{KNEE}.*{message}"):
        FastMRISliceDataset(root, "train")


def test_bad_test_files_are_named(root):
    path = root / "multicoil_test" / KNEE_TEST
    _rewrite(path, "mask", np.ones(39, np.float32))
    with pytest.raises(DataFormatError, match=rf"{KNEE_TEST}.*'mask' must have shape \(40,\)"):
        FastMRISliceDataset(root, "test")
    _rewrite(path, "mask", np.ones(40, np.float32))
    _rewrite(path, "ismrmrd_header")
    with pytest.raises(DataFormatError, match=f"{KNEE_TEST}.*without 'ismrmrd_header'"):
        FastMRISliceDataset(root, "test")


def test_missing_split_or_files(root):
    with pytest.raises(DataFormatError, match="no multicoil_val/ or val/ directory"):
        FastMRISliceDataset(root, "val")
    (root / "multicoil_val").mkdir()
    with pytest.raises(DataFormatError, match="multicoil_val: no .h5 files"):
        FastMRISliceDataset(root, "val")
