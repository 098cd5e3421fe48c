"""kill -9 of `finalize` mid-run, then `--resume`: it continues from the last finished epoch, in its own MLflow run,
and registers exactly one model version (a real process, a real SIGKILL, a real sqlite store)."""

import os
import signal
import subprocess
import sys

from mlflow.tracking import MlflowClient

from tests.search_records import one_trial_search
from tuner.contract import COMPLETED
from tuner.train.checkpoint import TrainingCheckpoint

TINY = {"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2, "model.pools": 2, "model.sens_chans": 2,
        "model.sens_pools": 2, "train.train_slices_per_epoch": 4, "train.val_slices": 4}
EPOCHS = 4


def test_finalize_killed_mid_run_resumes_from_its_last_epoch_and_registers_once(tmp_path, tiny_data):
    runs = tmp_path / "runs"
    record = one_trial_search(runs, tiny_data, TINY)
    finalize = [sys.executable, "-m", "tuner", "finalize", "--storage", str(runs), "--search", "s"]
    proc = subprocess.Popen([*finalize, "--epochs", str(EPOCHS)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith(f"  epoch 2/{EPOCHS}"):
                break  # epoch 2's last.pt is written; epoch 3 is training
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    final = runs / "s" / "final"
    killed_at = TrainingCheckpoint.load(final / "last.pt").epoch
    assert 2 <= killed_at < EPOCHS and not (final / "final.json").exists()

    resumed = subprocess.run([*finalize, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"  epoch {killed_at + 1}/{EPOCHS}" in resumed.stdout
    assert f"  epoch {killed_at}/{EPOCHS}" not in resumed.stdout, "finished epochs are not trained again"
    last = TrainingCheckpoint.load(final / "last.pt")
    assert last.epoch == EPOCHS and (final / "final.json").exists()

    client = MlflowClient(record.tracking_uri)
    finals = client.search_runs([record.experiment_id], filter_string="tags.kind = 'final'")
    assert [run.info.run_id for run in finals] == [last.run_id], "one final run, continued"
    assert finals[0].data.tags["status"] == COMPLETED and finals[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(last.run_id, "val_ssim")]
    assert sorted(steps) == list(range(1, EPOCHS + 1))
    assert len(client.search_model_versions("name = 'varnet-tuner-s'")) == 1
