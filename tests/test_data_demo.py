"""The simulated demo dataset: layout, dtypes, physics, intensity scale, per-file variation, leaderboard
split, determinism, atomic writing."""

import dataclasses
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from data import (
    DataFormatError,
    DemoSpec,
    SNUSliceDataset,
    category_of,
    detect_layout,
    ensure_demo_dataset,
    write_demo_dataset,
)
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
    assert sorted(p.name for p in demo.iterdir()) == ["demo_spec.json", "leaderboard", "train", "val"]
    written = json.loads((demo / "demo_spec.json").read_text())
    assert DemoSpec.from_dict(written) == TINY
    assert written["generator_version"] >= 2
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
        assert sorted(attrs) == ["acquisition", "max", "noise_std"], name


def test_dataset_reads_demo_with_right_categories(demo):
    for split, names in NAMES.items():
        ds = SNUSliceDataset(demo, split)
        assert [f.name for f in ds.files] == names
        assert len(ds) == len(names) * TINY.slices_per_file
        expected = [n.split("_acc")[0] + "_x" + n.split("_acc")[1][0] for n in names]
        assert ds.categories == [c for c in expected for _ in range(TINY.slices_per_file)]
        sample = ds[len(ds) - 1]
        assert sample.kspace.shape == (TINY.num_coils, *TINY.kspace_shape, 2)
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
        np.testing.assert_allclose(image["image_input"], center_crop(zero_filled, TINY.target_shape),
                                   rtol=1e-4, atol=1e-9)
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
    for (name, k1, i1, a1), (_, k2, i2, a2), (_, k3, _, _) in zip(_files(demo), _files(again), _files(other),
                                                                          strict=True):
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
    assert (spec.seed, spec.num_coils, spec.slices_per_file) == (0, (6, 10), 4)
    assert (spec.kspace_shape, spec.target_shape) == ((160, 96), (80, 80))
    assert (spec.train_files_per_category, spec.val_files_per_category) == (2, 1)
    assert spec.leaderboard_files_per_category == 1
    assert spec.center_fraction == 0.08
    assert spec.noise_std == (1e-6, 3e-6) and spec.mask_offset is None
    assert (spec.brain_contrasts, spec.knee_contrasts) == (("t1", "t2", "flair"), ("pd", "pdfs"))


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
        ({"num_coils": (5, 3)}, "num_coils"),
        ({"num_coils": (0, 3)}, "num_coils"),
        ({"num_coils": 4.0}, "num_coils"),
        ({"noise_std": (0.0, 1e-6)}, "noise_std"),
        ({"noise_std": (1e-6,)}, "noise_std"),
        ({"brain_contrasts": ("pd",)}, "brain_contrasts"),
        ({"knee_contrasts": ()}, "knee_contrasts"),
        ({"mask_offset": 4}, "mask_offset"),
        ({"mask_offset": -1}, "mask_offset"),
        ({"leaderboard_files_per_category": -1}, "leaderboard_files_per_category"),
    ],
)
def test_spec_validation_names_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        DemoSpec(**{**TINY.__dict__, **change})


def test_spec_dict_round_trip():
    assert DemoSpec.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    assert DemoSpec.from_dict(json.loads(json.dumps(DemoSpec().to_dict()))) == DemoSpec()
    assert DemoSpec(kspace_shape=[160, 96], num_coils=[6, 10], noise_std=[1e-6, 3e-6],
                    knee_contrasts=["pd", "pdfs"]) == DemoSpec()
    assert DemoSpec(brain_contrasts="flair").brain_contrasts == ("flair",)
    with pytest.raises(ValueError, match="unknown"):
        DemoSpec.from_dict({**TINY.to_dict(), "colour": "blue"})
    with pytest.raises(ValueError, match="generator version"):
        DemoSpec.from_dict({**TINY.to_dict(), "generator_version": -1})


# Per-file acquisition settings: drawn by default, pinned by a single value.
VARIED = dataclasses.replace(TINY, num_coils=(2, 6), train_files_per_category=3, leaderboard_files_per_category=2)
PINNED = dataclasses.replace(VARIED, num_coils=3, noise_std=2e-6, brain_contrasts="flair", knee_contrasts=("pdfs",),
                             mask_offset=1, leaderboard_files_per_category=0)


def _scans(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    """{split/name: (kspace, mask, image attrs)} of every train/val file."""
    scans = {}
    for split in ("train", "val"):
        for path in sorted((root / split / "kspace").glob("*.h5")):
            kspace, _ = _read(path)
            _, attrs = _read(root / split / "image" / path.name)
            scans[f"{split}/{path.name}"] = (kspace["kspace"], kspace["mask"].astype(bool), attrs)
    return scans


def _outer_offset(mask: np.ndarray, width: int) -> int:
    # The centre block sits mid-mask, so the first column outside it is the offset.
    return int(np.flatnonzero(mask & ~center_mask(width, round(width * 0.08)))[0])


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("varied") / "data", VARIED)


def test_coils_noise_contrast_and_mask_offset_vary_by_file(varied):
    scans = _scans(varied)
    height = VARIED.kspace_shape[0]
    coils = [kspace.shape[1] for kspace, _, _ in scans.values()]
    assert set(coils) <= set(range(2, 7)) and len(set(coils)) >= 3
    noise = [attrs["noise_std"] for _, _, attrs in scans.values()]
    assert len(set(noise)) == len(scans) and all(1e-6 <= n <= 3e-6 for n in noise)
    assert max(noise) / min(noise) > 1.5
    for name, (kspace, _, attrs) in scans.items():
        # Outside the object's rows the coil images hold only the k-space noise (orthonormal FFT).
        background = ifft2c(kspace.astype(np.complex128))[:, :, : height // 4 - 2]
        measured = np.sqrt(np.mean(np.abs(background) ** 2))
        assert measured == pytest.approx(attrs["noise_std"], rel=0.1), name
    for organ, contrasts in (("brain", {"t1", "t2", "flair"}), ("knee", {"pd", "pdfs"})):
        seen = {attrs["acquisition"] for name, (_, _, attrs) in scans.items() if f"/{organ}_" in name}
        assert seen <= contrasts and len(seen) >= 2, organ
    width = VARIED.kspace_shape[1]
    for acc in (4, 8):
        offsets = {_outer_offset(mask, width) for name, (_, mask, _) in scans.items() if f"_acc{acc}_" in name}
        assert len(offsets) >= 2, acc
    # Coil counts may differ by file, widths may not: the training loaders batch one slice at a time.
    assert {kspace.shape[2:] for kspace, _, _ in scans.values()} == {VARIED.kspace_shape}
    train = SNUSliceDataset(varied, "train")
    largest = train[train.largest_slice()].kspace.shape[0]
    assert largest == max(kspace.shape[1] for name, (kspace, _, _) in scans.items() if name.startswith("train/"))


def test_a_spec_pins_each_setting(tmp_path):
    root = write_demo_dataset(tmp_path / "pinned", PINNED)
    width = PINNED.kspace_shape[1]
    for name, (kspace, mask, attrs) in _scans(root).items():
        assert kspace.shape[1] == 3 and attrs["noise_std"] == 2e-6, name
        assert attrs["acquisition"] == ("flair" if "/brain_" in name else "pdfs"), name
        acc = int(name.split("_acc")[1][0])
        grid = np.zeros(width, dtype=bool)
        grid[1::acc] = True
        assert np.array_equal(mask, grid | center_mask(width, round(width * 0.08))), name
    assert not (root / "leaderboard").exists()


def test_pinning_one_setting_leaves_the_others(varied, tmp_path):
    pinned = write_demo_dataset(tmp_path / "coils", dataclasses.replace(VARIED, num_coils=3))
    for (name, (_, mask, attrs)), (_, mask3, attrs3) in zip(_scans(varied).items(), _scans(pinned).values(),
                                                               strict=True):
        assert np.array_equal(mask, mask3), name
        assert (attrs["noise_std"], attrs["acquisition"]) == (attrs3["noise_std"], attrs3["acquisition"]), name


def test_leaderboard_split_in_the_challenge_layout(demo):
    names = ["brain_test1.h5", "knee_test1.h5"]
    assert sorted(p.name for p in (demo / "leaderboard").iterdir()) == ["acc4", "acc8"]
    labels = {}
    for acc in (4, 8):
        for sub in ("kspace", "image"):
            assert sorted(p.name for p in (demo / "leaderboard" / f"acc{acc}" / sub).iterdir()) == names
        for name in names:
            kspace, _ = _read(demo / "leaderboard" / f"acc{acc}" / "kspace" / name)
            image, attrs = _read(demo / "leaderboard" / f"acc{acc}" / "image" / name)
            assert sorted(kspace) == ["kspace", "mask"] and sorted(image) == ["image_input", "image_label"]
            assert kspace["kspace"].dtype == np.complex64
            assert kspace["kspace"].shape == (TINY.slices_per_file, TINY.num_coils, *TINY.kspace_shape)
            mask = kspace["mask"]
            assert mask.dtype == np.float32 and mask.shape == (TINY.kspace_shape[1],)
            # Stored undersampled, as held-out test k-space comes: unsampled columns are zero.
            assert not kspace["kspace"][..., mask == 0].any() and kspace["kspace"][..., mask == 1].all()
            assert category_of(name, mask) == f"{name.split('_')[0]}_x{acc}"
            for key in image:
                assert image[key].dtype == np.float32
                assert image[key].shape == (TINY.slices_per_file, *TINY.target_shape)
            zero_filled = center_crop(rss(ifft2c(kspace["kspace"]), axis=1), TINY.target_shape)
            np.testing.assert_allclose(image["image_input"], zero_filled, rtol=1e-4, atol=1e-9)
            assert attrs["max"] == image["image_label"].max()
            labels.setdefault(name, []).append(image["image_label"])
    for name, (label4, label8) in labels.items():
        assert np.array_equal(label4, label8), name  # one scan per name, masked once per acceleration


def test_leaderboard_numbering(varied):
    for acc in (4, 8):
        found = sorted(p.name for p in (varied / "leaderboard" / f"acc{acc}" / "kspace").iterdir())
        assert found == ["brain_test1.h5", "brain_test2.h5", "knee_test1.h5", "knee_test2.h5"]


def test_the_search_splits_never_read_the_leaderboard(demo_copy):
    assert detect_layout(demo_copy) == "snu"
    for path in (demo_copy / "leaderboard").rglob("*.h5"):
        path.write_bytes(b"not hdf5")
    for split, names in NAMES.items():
        ds = SNUSliceDataset(demo_copy, split)
        assert [f.name for f in ds.files] == names
        assert ds[len(ds) - 1].fname == names[-1]


@pytest.mark.parametrize(("organ", "contrasts"), [("brain", ("t1", "t2", "flair")), ("knee", ("pd", "pdfs"))])
def test_contrasts_map_the_tissues_differently(organ, contrasts):
    from data.demo.phantoms import brain_slices, knee_slices

    phantom = {"brain": brain_slices, "knee": knee_slices}[organ]
    images = [phantom(np.random.default_rng(3), 2, (48, 40), c) for c in contrasts]
    for image in images:
        assert image.shape == (2, 48, 40) and 0.0 <= image.min() and 0.5 < image.max() < 1.5
    for i, a in enumerate(images):
        for b in images[i + 1 :]:
            assert np.abs(a - b).mean() > 0.03
    with pytest.raises(ValueError, match="contrast"):
        phantom(np.random.default_rng(3), 2, (48, 40), "dwi")
