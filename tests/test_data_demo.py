"""The simulated demo dataset: layout, dtypes, physics, intensity scale, determinism, atomic writing."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from data import DataFormatError, DemoSpec, SNUSliceDataset, ensure_demo_dataset, write_demo_dataset
from data.masks import center_mask, nominal_acceleration
from data.transforms import center_crop, ifft2c, rss

TINY = DemoSpec(
    num_coils=4,
    kspace_shape=(64, 48),
    target_shape=(32, 32),
    slices_per_file=2,
    train_files_per_category=1,
    val_files_per_category=1,
)
NAMES = {
    split: sorted(f"{organ}_acc{acc}_{n}.h5" for organ in ("brain", "knee") for acc in (4, 8))
    for split, n in (("train", 1), ("val", 2))
}
ROI_THRESHOLD = {"brain": 5e-5, "knee": 2e-5}  # the leaderboard's absolute ROI thresholds


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "data", TINY)


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in f}, dict(f.attrs)


def _files(root: Path):
    for split, names in NAMES.items():
        for name in names:
            kspace, _ = _read(root / split / "kspace" / name)
            image, attrs = _read(root / split / "image" / name)
            yield name, kspace, image, attrs


def test_layout_and_spec_file(demo):
    for split, names in NAMES.items():
        for sub in ("kspace", "image"):
            assert sorted(p.name for p in (demo / split / sub).iterdir()) == names
    assert sorted(p.name for p in demo.iterdir()) == ["demo_spec.json", "train", "val"]
    written = json.loads((demo / "demo_spec.json").read_text())
    assert DemoSpec.from_dict(written) == TINY
    assert written["generator_version"] >= 1
    assert not [p for p in demo.parent.iterdir() if p.name != "data"]  # no temporary left behind


def test_keys_dtypes_shapes(demo):
    height, width = TINY.kspace_shape
    for name, kspace, image, attrs in _files(demo):
        assert sorted(kspace) == ["kspace", "mask"]
        assert kspace["kspace"].dtype == np.complex64
        assert kspace["kspace"].shape == (TINY.slices_per_file, TINY.num_coils, height, width)
        assert kspace["mask"].dtype == np.float32 and kspace["mask"].shape == (width,)
        assert set(np.unique(kspace["mask"])) == {0.0, 1.0}
        assert sorted(image) == ["image_input", "image_label"]
        for key in image:
            assert image[key].dtype == np.float32
            assert image[key].shape == (TINY.slices_per_file, *TINY.target_shape)
        assert attrs["max"] == image["image_label"].max(), name


def test_dataset_reads_demo_with_right_categories(demo):
    for split, names in NAMES.items():
        ds = SNUSliceDataset(demo, split)
        assert [f.name for f in ds.files] == names
        assert len(ds) == len(names) * TINY.slices_per_file
        expected = [n.split("_acc")[0] + "_x" + n.split("_acc")[1][0] for n in names]
        assert ds.categories == [c for c in expected for _ in range(TINY.slices_per_file)]
        sample = ds[len(ds) - 1]
        assert sample.masked_kspace.shape == (TINY.num_coils, *TINY.kspace_shape, 2)
        assert sample.target.shape == TINY.target_shape


def test_masks_are_equispaced_with_center_block(demo):
    width = TINY.kspace_shape[1]
    center = center_mask(width, round(width * 0.08))  # 4 columns from (48 - 4 + 1) // 2 = 22
    assert np.flatnonzero(center).tolist() == [22, 23, 24, 25]
    for name, kspace, _, _ in _files(demo):
        acc = int(name.split("_acc")[1][0])
        mask = kspace["mask"].astype(bool)
        offset = int(np.flatnonzero(mask)[0])
        grid = np.zeros(width, dtype=bool)
        grid[offset::acc] = True
        assert offset < acc and np.array_equal(mask, grid | center), name
        assert nominal_acceleration(mask, (4, 8)) == acc


def test_targets_are_rss_of_fully_sampled_coils_with_readout_oversampling(demo):
    height = TINY.kspace_shape[0]
    for name, kspace, image, _ in _files(demo):
        coils = ifft2c(kspace["kspace"].astype(np.complex128))
        full = rss(coils, axis=1)
        np.testing.assert_allclose(image["image_label"], center_crop(full, TINY.target_shape), rtol=1e-4, atol=1e-9)
        zero_filled = rss(ifft2c(kspace["kspace"] * kspace["mask"]), axis=1)
        np.testing.assert_allclose(image["image_input"], center_crop(zero_filled, TINY.target_shape), rtol=1e-4, atol=1e-9)
        # The object fills the central half of the readout axis; outside it there is only noise.
        outside = np.concatenate([full[:, : height // 4 - 1], full[:, 3 * height // 4 + 1 :]], axis=1)
        assert outside.max() < 0.1 * full.max(), name


def test_intensities_make_the_leaderboard_roi_meaningful(demo):
    height = TINY.kspace_shape[0]
    for name, kspace, image, attrs in _files(demo):
        threshold = ROI_THRESHOLD[name.split("_")[0]]
        assert 1e-4 <= attrs["max"] <= 6e-4, name
        for label in image["image_label"]:
            assert 0.15 <= (label > threshold).mean() <= 0.85, name
        full = rss(ifft2c(kspace["kspace"]), axis=1)
        background = full[:, : height // 4 - 1]
        assert background.max() < 0.7 * threshold, name


def test_same_seed_identical_arrays_other_seed_differs(demo, tmp_path):
    again = tmp_path / "again"
    again.mkdir()  # an existing empty directory is replaced
    write_demo_dataset(again, TINY)
    other = write_demo_dataset(tmp_path / "other", DemoSpec(**{**TINY.__dict__, "seed": 1}))
    for (name, k1, i1, a1), (_, k2, i2, a2), (_, k3, _, _) in zip(_files(demo), _files(again), _files(other)):
        for key in k1:
            assert np.array_equal(k1[key], k2[key]), (name, key)
        for key in i1:
            assert np.array_equal(i1[key], i2[key]), (name, key)
        assert a1["max"] == a2["max"]
        assert not np.array_equal(k1["kspace"], k3["kspace"])


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_demo_dataset(out, TINY)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary left behind
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(FileExistsError):
        write_demo_dataset(afile, TINY)


def test_ensure_reuses_matching_and_rejects_foreign(demo, tmp_path):
    before = (demo / "train" / "kspace" / NAMES["train"][0]).stat().st_mtime_ns
    assert ensure_demo_dataset(demo, TINY) == demo
    assert (demo / "train" / "kspace" / NAMES["train"][0]).stat().st_mtime_ns == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "demo_spec.json").write_text(json.dumps({**TINY.to_dict(), "seed": 5}))
    with pytest.raises(FileExistsError):
        ensure_demo_dataset(foreign, TINY)


@pytest.fixture
def demo_copy(demo, tmp_path) -> Path:
    return Path(shutil.copytree(demo, tmp_path / "copy"))


def test_missing_image_pair_is_named(demo_copy):
    (demo_copy / "train" / "image" / "knee_acc8_1.h5").unlink()
    with pytest.raises(DataFormatError, match="knee_acc8_1.h5.*no image pair"):
        SNUSliceDataset(demo_copy, "train")


def test_missing_mask_is_named(demo_copy):
    with h5py.File(demo_copy / "val" / "kspace" / "brain_acc8_2.h5", "a") as f:
        del f["mask"]
    with pytest.raises(DataFormatError, match="brain_acc8_2.h5.*'mask'"):
        SNUSliceDataset(demo_copy, "val")


def test_wrong_mask_length_is_named(demo_copy):
    with h5py.File(demo_copy / "train" / "kspace" / "brain_acc4_1.h5", "a") as f:
        mask = f["mask"][()]
        del f["mask"]
        f["mask"] = mask[:-2]
    with pytest.raises(DataFormatError, match=r"brain_acc4_1.h5.*\(48,\)"):
        SNUSliceDataset(demo_copy, "train")


def test_default_spec_values():
    spec = DemoSpec()
    assert (spec.seed, spec.num_coils, spec.slices_per_file) == (0, 8, 4)
    assert (spec.kspace_shape, spec.target_shape) == ((160, 96), (80, 80))
    assert (spec.train_files_per_category, spec.val_files_per_category) == (2, 1)
    assert spec.center_fraction == 0.08


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_coils": 0}, "num_coils"),
        ({"seed": -1}, "seed"),
        ({"slices_per_file": 2.0}, "slices_per_file"),
        ({"val_files_per_category": 0}, "val_files_per_category"),
        ({"kspace_shape": (64,)}, "kspace_shape"),
        ({"kspace_shape": (8, 48)}, "kspace_shape"),
        ({"target_shape": (80, 32)}, "target_shape"),
        ({"center_fraction": 0.0}, "center_fraction"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"noise_std": "2e-6"}, "noise_std"),
        ({"slices_per_file": 200}, "slices_per_file"),
        ({"intensity_range": (1e-4, "big")}, "intensity_range"),
        ({"intensity_range": (3e-4, 1e-4)}, "intensity_range"),
    ],
)
def test_spec_validation_names_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        DemoSpec(**{**TINY.__dict__, **change})


def test_spec_dict_round_trip():
    assert DemoSpec.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    assert DemoSpec(kspace_shape=[160, 96]) == DemoSpec()
    with pytest.raises(ValueError, match="unknown"):
        DemoSpec.from_dict({**TINY.to_dict(), "colour": "blue"})
    with pytest.raises(ValueError, match="generator version"):
        DemoSpec.from_dict({**TINY.to_dict(), "generator_version": -1})
