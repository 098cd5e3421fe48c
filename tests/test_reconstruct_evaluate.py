"""Submission: `reconstruct` + `evaluate` score exactly what validation scored; every model source loads."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from data.masks import make_mask
from tuner.cli import main
from tuner.config.trial import TrialConfig
from tuner.tracking.models import register_model
from tuner.tracking.runs import Run, ensure_experiment
from tuner.train.engine import Trainer
from tuner.train.loaders import TrialData
from tuner.train.metrics import SSIMSummary

CONFIG = {"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2, "model.pools": 2,
          "model.sens_chans": 2, "model.sens_pools": 2, "train.lr": 3e-3, "train.train_slices_per_epoch": 4}
REGISTERED = "varnet-tuner-tiny"


@dataclass
class Trained:
    trainer: Trainer
    val: SSIMSummary  # Trainer.validate on the whole val set
    runs: Path  # a storage folder holding the search "tiny-search" with final/best.pt and final/last.pt
    best: Path
    tracking_uri: str
    run_id: str


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One epoch of a tiny VarNet, saved as finalize saves it, and logged + registered in a sqlite MLflow store."""
    config = TrialConfig.from_flat(CONFIG)
    data = TrialData(tiny_data, config.train)
    trainer = Trainer(config, total_epochs=1, device=torch.device("cpu"))
    trainer.run_epoch(data.train_loader(0), data.val_loader())
    val = trainer.validate(data.val_loader())
    work = tmp_path_factory.mktemp("submission")
    final = work / "runs" / "tiny-search" / "final"
    final.mkdir(parents=True)
    torch.save({"epoch": 1, "model": trainer.model.state_dict(), "config": config.as_dict(),
                "val_ssim": val.overall}, final / "best.pt")
    torch.save(trainer.state_dict(), final / "last.pt")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    run = Run.start(uri, ensure_experiment(uri, "tiny"), name="final")
    run.log_text(yaml.safe_dump(config.as_dict()), "config.yaml")
    assert register_model(uri, run.run_id, trainer.model.state_dict(), config, REGISTERED) == "1"
    run.finish("completed")
    return Trained(trainer, val, work / "runs", final / "best.pt", uri, run.run_id)


@pytest.fixture(scope="module")
def val_recon(trained: Trained, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recon") / "val"
    assert main(["reconstruct", "--model", str(trained.best), "--data", str(tiny_data / "val" / "kspace"),
                 "--out", str(out)]) == 0
    return out


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI expecting a user error; returns its one line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def _read(path: Path) -> np.ndarray:
    with h5py.File(path) as f:
        return f["reconstruction"][()]


def _assert_scores_match(scores: dict, val: SSIMSummary) -> None:
    assert scores["slices"] == val.slices
    assert scores["overall"] == pytest.approx(val.overall, abs=1e-6)
    assert scores["per_category"] == pytest.approx(val.per_category, abs=1e-6)
    assert scores["per_acceleration"] == pytest.approx({f"x{a}": v for a, v in val.per_acceleration.items()},
                                                       abs=1e-6)


def test_reconstruction_scores_what_validation_scored(trained, tiny_data, val_recon, tmp_path, capsys):
    capsys.readouterr()
    for kspace in sorted((tiny_data / "val" / "kspace").glob("*.h5")):
        with h5py.File(val_recon / kspace.name) as f, h5py.File(tiny_data / "val" / "image" / kspace.name) as t:
            assert list(f) == ["reconstruction"] and f["reconstruction"].dtype == np.float32
            assert f["reconstruction"].shape == t["image_label"].shape  # cropped to the target's size
    scores_file = tmp_path / "scores.json"
    assert main(["evaluate", "--recon", str(val_recon), "--data", str(tiny_data), "--split", "val",
                 "--json", str(scores_file)]) == 0
    printed = capsys.readouterr().out
    assert f"{trained.val.overall:.6f}" in printed
    for category in ("brain_x4", "brain_x8", "knee_x4", "knee_x8", "x4", "x8", "overall"):
        assert any(line.startswith(category) for line in printed.splitlines()), category
    _assert_scores_match(json.loads(scores_file.read_text()), trained.val)


def test_leaderboard_layout_round_trip(trained, tiny_data, tmp_path, capsys):
    root = tmp_path / "root"
    names = {}
    for kspace in sorted((tiny_data / "val" / "kspace").glob("*.h5")):
        organ, acc, _ = kspace.stem.split("_")
        name = f"{organ}_test1.h5"
        names[f"{acc}/{name}"] = kspace.name
        folder = root / "leaderboard" / acc
        (folder / "kspace").mkdir(parents=True, exist_ok=True)
        (folder / "image").mkdir(exist_ok=True)
        shutil.copy(tiny_data / "val" / "image" / kspace.name, folder / "image" / name)
        with h5py.File(kspace) as src, h5py.File(folder / "kspace" / name, "w") as dst:
            # The leaderboard ships k-space already undersampled; applying the mask again changes nothing.
            dst["kspace"] = src["kspace"][()] * src["mask"][()]
            dst["mask"] = src["mask"][()]
    out = tmp_path / "submission"
    assert main(["reconstruct", "--model", str(trained.best), "--data", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "leaderboard layout" in printed and "the challenge's 3600 s limit" in printed
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.h5")) == sorted(names)
    for submitted, original in names.items():
        with h5py.File(out / submitted) as f, h5py.File(tiny_data / "val" / "image" / original) as t:
            assert f["reconstruction"].shape == t["image_label"].shape
    scores_file = tmp_path / "scores.json"
    assert main(["evaluate", "--recon", str(out), "--data", str(root), "--json", str(scores_file)]) == 0
    _assert_scores_match(json.loads(scores_file.read_text()), trained.val)


def test_without_targets_the_output_is_384_square_or_the_whole_image(trained, tiny_data, tmp_path):
    data = tmp_path / "kspace"
    data.mkdir()
    shutil.copy(tiny_data / "val" / "kspace" / "brain_acc4_2.h5", data)
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((1, 2, 400, 392)) + 1j * rng.standard_normal((1, 2, 400, 392))) * 1e-5
    with h5py.File(data / "brain_big.h5", "w") as f:
        f["kspace"] = kspace.astype(np.complex64)
        f["mask"] = make_mask("equispaced", 392, 4, 0.08, seed=0).astype(np.float32)
    out = tmp_path / "out"
    out.mkdir()  # an existing empty folder is accepted
    assert main(["reconstruct", "--model", str(trained.best), "--data", str(tmp_path), "--out", str(out),
                 "--batch-size", "2", "--device", "cpu"]) == 0
    with h5py.File(out / "brain_big.h5") as f:
        assert f["reconstruction"].shape == (1, 384, 384)
        assert np.isfinite(f["reconstruction"][()]).all()
    with h5py.File(out / "brain_acc4_2.h5") as f:
        assert f["reconstruction"].shape == (2, 64, 48)  # the k-space's H x W is smaller than 384 x 384
    assert sorted(p.name for p in out.iterdir()) == ["brain_acc4_2.h5", "brain_big.h5"]  # no temporary files left


def test_every_model_source_gives_the_same_reconstruction(trained, tiny_data, val_recon, tmp_path, capsys):
    final = trained.best.parent
    state_dir = tmp_path / "checkpoint_000000"
    state_dir.mkdir()
    torch.save({**trained.trainer.state_dict(), "mlflow_run_id": trained.run_id}, state_dir / "state.pt")
    sources = {
        "search dir": [str(final.parent)], "finalize dir": [str(final)], "last.pt": [str(final / "last.pt")],
        "search name": ["tiny-search", "--storage", str(trained.runs)], "trial state.pt": [str(state_dir)],
        "registered model": [f"models:/{REGISTERED}/1", "--tracking-uri", trained.tracking_uri],
        "run model": [f"runs:/{trained.run_id}/model", "--tracking-uri", trained.tracking_uri],
    }
    data = tmp_path / "one" / "kspace"  # one file (and its target) is enough to tell models apart
    for folder in ("kspace", "image"):
        (tmp_path / "one" / folder).mkdir(parents=True)
        shutil.copy(tiny_data / "val" / folder / "knee_acc8_2.h5", tmp_path / "one" / folder)
    expected = _read(val_recon / "knee_acc8_2.h5")
    for label, model in sources.items():
        out = tmp_path / label.replace(" ", "_")
        assert main(["reconstruct", "--model", *model, "--data", str(data), "--out", str(out)]) == 0, label
        assert "model: varnet c1 ch2 s2 (3,717 parameters)" in capsys.readouterr().out, label
        np.testing.assert_array_equal(_read(out / "knee_acc8_2.h5"), expected, err_msg=label)


def test_user_errors_are_one_line_and_write_nothing(trained, tiny_data, val_recon, tmp_path, capsys):
    data = str(tiny_data / "val" / "kspace")
    out = tmp_path / "out"
    assert "no search" in _error(capsys, ["reconstruct", "--model", "no-such-model", "--data", data,
                                          "--out", str(out), "--storage", str(trained.runs)])
    assert "cannot load it from the MLflow store" in _error(
        capsys, ["reconstruct", "--model", "models:/no-such-model/1", "--tracking-uri", trained.tracking_uri,
                 "--data", data, "--out", str(out)])
    torch.save({"weights": {}}, tmp_path / "other.pt")
    assert "expected a checkpoint with keys 'model' and 'config'" in _error(
        capsys, ["reconstruct", "--model", str(tmp_path / "other.pt"), "--data", data, "--out", str(out)])
    assert not out.exists()
    assert "no k-space files" in _error(capsys, ["reconstruct", "--model", str(trained.best), "--data",
                                                 str(tmp_path), "--out", str(out)])
    assert "already exists and is not an empty directory" in _error(
        capsys, ["reconstruct", "--model", str(trained.best), "--data", data, "--out", str(val_recon)])

    def broken(label: str, name: str, shape: tuple[int, ...] | None) -> Path:
        """A copy of the good reconstructions with `name` removed (shape None) or replaced by zeros of `shape`."""
        recon = tmp_path / label
        shutil.copytree(val_recon, recon)
        (recon / name).unlink()
        if shape is not None:
            with h5py.File(recon / name, "w") as f:
                f["reconstruction"] = np.zeros(shape, np.float32)
        return recon

    evaluate = ["evaluate", "--data", str(tiny_data / "val"), "--recon"]
    missing = broken("missing", "knee_acc8_2.h5", None)
    assert f"{missing / 'knee_acc8_2.h5'}: missing reconstruction" in _error(capsys, [*evaluate, str(missing)])
    wrong_size = broken("size", "brain_acc4_2.h5", (2, 30, 30))
    assert f"{wrong_size / 'brain_acc4_2.h5'}: slices of 30x30, its target" in _error(
        capsys, [*evaluate, str(wrong_size)])
    wrong_count = broken("count", "brain_acc8_2.h5", (1, 32, 32))
    assert f"{wrong_count / 'brain_acc8_2.h5'}: 1 slices, its target" in _error(capsys, [*evaluate, str(wrong_count)])
    taken = tmp_path / "taken.json"
    taken.write_text("{}")
    assert "--json" in _error(capsys, [*evaluate, str(val_recon), "--json", str(taken)])
    assert taken.read_text() == "{}"

