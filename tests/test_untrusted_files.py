"""A file handed to the tool never runs code: a malicious pickle planted where a checkpoint, a trial folder, a
finalize state or a registered model should be is refused with one `error:` line, and its payload never runs."""

import os
import pathlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from models import build_model
from tests.conftest import TINY_SPACE
from tests.search_records import one_trial_search
from tuner.cli import main
from tuner.config.trial import TrialConfig
from tuner.search.record import SearchRecord
from tuner.search.trainable import NODES_FILE, read_nodes
from tuner.tracking.models import WEIGHTS_FILE, register_model
from tuner.tracking.runs import Run, ensure_experiment
from tuner.train.checkpoint import CheckpointError, TrainingCheckpoint

TINY = {"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2, "model.pools": 2, "model.sens_chans": 2,
        "model.sens_pools": 2}


class Payload:
    """Unpickling this touches `marker`: the proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _plant(path: Path, marker: Path) -> None:
    """A file that looks like one of our checkpoints but carries a payload."""
    config = TrialConfig.from_flat(TINY)
    torch.save({"model": Payload(marker), "config": config.as_dict(), "epoch": 1, "mlflow_run_id": "x"}, path)


def _refused(capsys: pytest.CaptureFixture, argv: list[str], marker: Path) -> str:
    capsys.readouterr()  # what the test's own setup printed
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists(), "the planted payload ran"
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_the_payload_would_run_if_unpickled(tmp_path):
    """The planted file is a real threat: torch's unsafe loading runs it. Everything below refuses it."""
    _plant(tmp_path / "x.pt", tmp_path / "marker")
    torch.load(tmp_path / "x.pt", weights_only=False)
    assert (tmp_path / "marker").exists()


def test_reconstruct_refuses_a_planted_checkpoint_and_trial_folder(tmp_path, tiny_data, capsys):
    marker = tmp_path / "marker"
    _plant(tmp_path / "best.pt", marker)
    err = _refused(capsys, ["reconstruct", "--model", str(tmp_path / "best.pt"), "--data", str(tiny_data / "val"),
                            "--out", str(tmp_path / "out")], marker)
    assert "refused to load" in err and "best.pt" in err
    trial = tmp_path / "checkpoint_000001"
    trial.mkdir()
    _plant(trial / "state.pt", marker)
    err = _refused(capsys, ["reconstruct", "--model", str(trial), "--data", str(tiny_data / "val"),
                            "--out", str(tmp_path / "out")], marker)
    assert "state.pt" in err
    assert not (tmp_path / "out").exists()


def test_finalize_resume_refuses_a_planted_last_checkpoint(tmp_path, tiny_data, capsys):
    marker = tmp_path / "marker"
    one_trial_search(tmp_path / "runs", tiny_data, TINY)
    (tmp_path / "runs" / "s" / "final").mkdir()
    _plant(tmp_path / "runs" / "s" / "final" / "last.pt", marker)
    err = _refused(capsys, ["finalize", "--storage", str(tmp_path / "runs"), "--search", "s", "--resume"], marker)
    assert "last.pt: refused to load" in err


def test_a_resumed_search_refuses_a_trials_planted_state_inside_its_ray_worker(tmp_path, tiny_data):
    """kill -9 mid-trial, a payload planted as the trial's checkpoint, `--resume`: the trial fails with the refusal
    (real Ray restores it in a worker process), the payload never runs and the search ends without a best trial."""
    marker = tmp_path / "marker"
    search = subprocess.Popen(
        [sys.executable, "-m", "tuner", "search", str(TINY_SPACE), "--data", str(tiny_data), "--name", "p",
         "--num-samples", "1", "--max-epochs", "8"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, start_new_session=True)
    try:
        seen = False
        for line in search.stdout:
            if line.startswith("  t001") and " epoch 2/" in line:
                seen = True
                break
        # Kill once Tune's snapshot on disk names epoch 2's checkpoint. This line is printed just before Tune
        # registers that checkpoint, deletes epoch 1's and writes its snapshot; a kill in those milliseconds would
        # leave a snapshot naming a deleted checkpoint (Ray's ordering, not what this test is about).
        deadline = time.monotonic() + 60
        while seen and time.monotonic() < deadline and not any(
                "checkpoint_000001" in state.read_text()
                for state in (tmp_path / "tuner_runs" / "p").glob("experiment_state-*.json")):
            time.sleep(0.05)
        os.kill(search.pid, signal.SIGKILL)
        search.wait(timeout=60)
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    assert seen, "the trial never reported its second epoch"
    states = list((tmp_path / "tuner_runs" / "p").glob("t001_*/checkpoint_*/state.pt"))
    assert states
    for state in states:
        _plant(state, marker)

    resumed = subprocess.run([sys.executable, "-m", "tuner", "search", "--name", "p", "--resume"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert not marker.exists(), "the planted payload ran"
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    assert "state.pt: refused to load" in (resumed.stdout + resumed.stderr)
    record = SearchRecord.load(tmp_path / "tuner_runs" / "p" / "search.json")
    assert [t.status for t in record.trials] == ["failed"] and record.best is None


def test_a_registered_model_whose_weights_were_replaced_is_refused(tmp_path, tiny_data, capsys):
    marker = tmp_path / "marker"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = Run.start(uri, ensure_experiment(uri, "untrusted"), name="final")
    config = TrialConfig.from_flat(TINY)
    assert register_model(uri, run.run_id, build_model(config.model).state_dict(), config, "m") == "1"
    args = ["reconstruct", "--model", "models:/m/1", "--tracking-uri", uri, "--data", str(tiny_data / "val"),
            "--out", str(tmp_path / "recon")]
    assert main(args) == 0, "the untampered model loads and reconstructs"
    capsys.readouterr()
    source = MlflowClient(uri).get_model_version("m", "1").source
    weights = Path(source.removeprefix("file://")) / WEIGHTS_FILE
    torch.save({"weight": Payload(marker)}, weights)
    err = _refused(capsys, [*args[:-1], str(tmp_path / "recon2")], marker)
    assert "models:/m/1" in err and "refused to load" in err


def test_a_checkpoint_written_before_the_rng_became_tensors_still_loads(tmp_path):
    """Older checkpoints hold NumPy's generator state as a uint32 array: allowed, and restored exactly."""
    import numpy as np

    from tuner.train import devices

    np.random.seed(7)
    state = devices.rng_state(torch.device("cpu"))
    state["numpy"] = np.random.get_state()
    expected = np.random.random(3)
    config = TrialConfig.from_flat(TINY)
    torch.save({"model": build_model(config.model).state_dict(), "config": config.as_dict(), "epoch": 1,
                "mlflow_run_id": "r", "rng": state}, tmp_path / "old.pt")
    loaded = TrainingCheckpoint.load(tmp_path / "old.pt")
    np.random.seed(0)
    devices.set_rng_state(loaded.trainer_state["rng"], torch.device("cpu"))
    assert np.array_equal(np.random.random(3), expected)


def test_a_trial_checkpoints_node_list_is_read_as_data_and_checked(tmp_path):
    """The node history beside a trial's state is JSON, read as a list of ids; anything else is a one-line
    CheckpointError naming the file, and a checkpoint without one (older versions) has no history."""
    nodes = tmp_path / NODES_FILE
    assert read_nodes(nodes) == []
    nodes.write_text('["a1", "b2"]')
    assert read_nodes(nodes) == ["a1", "b2"]
    for bad in ('{"a1": 1}', "[1, 2]", "not json"):
        nodes.write_text(bad)
        with pytest.raises(CheckpointError, match=f"^{nodes}: ") as caught:
            read_nodes(nodes)
        assert "\n" not in str(caught.value)
