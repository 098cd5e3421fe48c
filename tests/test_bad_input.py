"""Bad input is one `error:` line, exit code 2, and nothing written: the cases that once showed a traceback or
left something behind."""

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from data import DataFormatError, SNUSliceDataset
from models import build_model
from tests.search_records import one_trial_search
from tuner.cli import main
from tuner.config.trial import TrialConfig

TINY = {"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2, "model.pools": 2, "model.sens_chans": 2,
        "model.sens_pools": 2}


def _one_error_line(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_a_model_uri_with_no_store_names_it_and_creates_none(tmp_path, tiny_data, capsys, monkeypatch):
    """The default store is ./mlflow.db: opening it would create an empty one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    err = _one_error_line(capsys, ["reconstruct", "--model", "models:/nosuch/1", "--data", str(tiny_data / "val"),
                                   "--out", str(tmp_path / "out")])
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in err
    assert sorted(os.listdir(tmp_path)) == []


def test_a_corrupt_search_record_is_one_line(tmp_path, capsys):
    record = tmp_path / "runs" / "s" / "search.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"name": "s", "trials": [')
    err = _one_error_line(capsys, ["finalize", "--storage", str(tmp_path / "runs")])
    assert "search.json: not a readable search record" in err
    assert sorted(p.name for p in record.parent.iterdir()) == ["search.json"]


def test_a_truncated_finalize_state_is_one_line(tmp_path, tiny_data, capsys):
    runs = tmp_path / "runs"
    one_trial_search(runs, tiny_data, TINY)
    final = runs / "s" / "final"
    final.mkdir()
    (final / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    err = _one_error_line(capsys, ["finalize", "--storage", str(runs), "--search", "s", "--resume"])
    assert "last.pt: not a readable training checkpoint" in err


def test_a_checkpoint_whose_model_is_not_a_mapping_is_one_line(tmp_path, tiny_data, capsys):
    import torch

    from tuner.config.trial import TrialConfig

    runs = tmp_path / "runs"
    one_trial_search(runs, tiny_data, TINY)
    final = runs / "s" / "final"
    final.mkdir()
    torch.save({"model": [1, 2], "config": TrialConfig.from_flat(TINY).as_dict(), "epoch": 1,
                "mlflow_run_id": "r"}, final / "last.pt")
    err = _one_error_line(capsys, ["finalize", "--storage", str(runs), "--search", "s", "--resume"])
    assert "'model' must be a mapping, found list" in err


def _poison(path: Path, key: str) -> None:
    """Make one value of `key` in an h5 file NaN, as a corrupt acquisition or a bad export would."""
    with h5py.File(path, "r+") as f:
        values = f[key][()]
        values.flat[0] = np.nan
        f[key][...] = values


def test_non_finite_values_are_a_data_error_naming_the_file(tmp_path, tiny_data, capsys):
    """Reading a slice, reconstructing and scoring all refuse NaN instead of training, writing or scoring it."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    kspace = sorted((data / "val" / "kspace").glob("*.h5"))[0]
    _poison(kspace, "kspace")
    with pytest.raises(DataFormatError, match=rf"{kspace.name}: kspace slice 0 holds NaN or infinite values"):
        SNUSliceDataset(data, "val")[0]

    model = tmp_path / "best.pt"
    config = TrialConfig.from_flat(TINY)
    torch.save({"model": build_model(config.model).state_dict(), "config": config.as_dict()}, model)
    out = tmp_path / "recon"
    err = _one_error_line(capsys, ["reconstruct", "--model", str(model), "--data", str(data / "val"),
                                   "--out", str(out)])
    assert f"{kspace.name}: kspace slices 0..0 holds NaN or infinite values" in err
    assert not (out / kspace.name).exists()

    # Reconstruct a clean split, then spoil one reconstruction.
    shutil.rmtree(out)
    clean = tmp_path / "clean"
    shutil.copytree(tiny_data / "val", clean)
    assert main(["reconstruct", "--model", str(model), "--data", str(clean), "--out", str(out)]) == 0
    _poison(out / kspace.name, "reconstruction")
    err = _one_error_line(capsys, ["evaluate", "--recon", str(out), "--data", str(clean)])
    assert f"{kspace.name}: reconstruction holds NaN or infinite values" in err


def test_a_search_reads_every_value_before_it_starts(tmp_path, tiny_data, capsys):
    """A NaN in the last slice of a validation target is found before any trial, store or search folder exists."""
    from tests.conftest import TINY_SPACE

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    image = sorted((data / "val" / "image").glob("*.h5"))[-1]
    with h5py.File(image, "r+") as f:
        last = f["image_label"].shape[0] - 1
        values = f["image_label"][()]
        values[last, -1, -1] = np.inf
        f["image_label"][...] = values
    err = _one_error_line(capsys, ["search", str(TINY_SPACE), "--data", str(data), "--storage",
                                   str(tmp_path / "runs"), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert err == f"error: {image}: image_label slice {last} holds NaN or infinite values"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_an_unreachable_tracking_server_is_one_line_before_anything_starts(tmp_path, tiny_data, capsys):
    """It used to be minutes of MLflow retries, then a long traceback, with a search folder left behind."""
    from tests.conftest import TINY_SPACE

    err = _one_error_line(capsys, ["search", str(TINY_SPACE), "--data", str(tiny_data), "--storage",
                                   str(tmp_path / "runs"), "--tracking-uri", "http://127.0.0.1:9"])
    assert "--tracking-uri http://127.0.0.1:9: no MLflow server answers there" in err
    assert not (tmp_path / "runs").exists()


def test_processes_opening_a_new_sqlite_store_at_once_all_get_a_usable_store(tmp_path):
    """Without the lock, MLflow's schema migration ran in each and one failed ('duplicate column')."""
    import multiprocessing

    from tuner.tracking.runs import ensure_experiment, open_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(open_store, [uri] * 4)
    assert ensure_experiment(uri, "after")
