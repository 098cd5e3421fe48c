"""The tracking server stops while a search runs and comes back, during the search or only after it: the search
neither hangs nor dies silently, and no metric is lost (a real `mlflow server` on 127.0.0.1, stopped and restarted on
the same port and store)."""

import os
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from tests.conftest import TINY_SPACE
from tests.mlflow_server import free_port, start_server, stop_server
from tuner.contract import COMPLETED, OUTBOX_DIR
from tuner.search.record import SearchRecord

TRIALS = 2
OUTAGE_S = 8


def _search_then_stop_the_server(tmp_path, tiny_data, server, url, env=None):
    """Start a search; stop `server` once its first trial has logged its first epoch; return the search."""
    search = subprocess.Popen(
        [sys.executable, "-m", "tuner", "search", str(TINY_SPACE), "--data", str(tiny_data), "--name", "o",
         "--num-samples", str(TRIALS), "--tracking-uri", url],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env=None if env is None else {**os.environ, **env})
    for line in search.stdout:
        if line.startswith("  t") and " epoch 1/" in line:
            break
    stop_server(server)  # from the first trial's second epoch on, writes find no server
    return search


def _assert_every_metric_reached_the_server(tmp_path):
    # Read the server's own store: everything the search wrote reached it.
    record = SearchRecord.load(tmp_path / "tuner_runs" / "o" / "search.json")
    assert record.status == COMPLETED and len(record.trials) == TRIALS
    client = MlflowClient(f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}")
    runs = {run.data.tags["tune.trial_id"]: run for run in client.search_runs(
        [record.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'")}
    assert set(runs) == {t.trial_id for t in record.trials}, "one run per trial"
    for trial in record.trials:
        run = runs[trial.trial_id]
        assert run.info.status == "FINISHED" and run.data.tags["status"] == trial.status
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_ssim"))
        assert steps == list(range(1, trial.epochs + 1)), (trial.name, steps)
    assert client.get_run(record.parent_run_id).data.tags["status"] == COMPLETED
    outbox = tmp_path / "tuner_runs" / "o" / OUTBOX_DIR
    assert not outbox.exists() or not any(outbox.iterdir()), "everything queued was sent"


def test_a_search_outlives_a_tracking_server_restart_and_loses_no_metric(tmp_path, tiny_data):
    port = free_port()
    server = start_server(tmp_path / "server", port)
    search = _search_then_stop_the_server(tmp_path, tiny_data, server, f"http://127.0.0.1:{port}")
    try:
        time.sleep(OUTAGE_S)
        server = start_server(tmp_path / "server", port)
        out, err = search.communicate(timeout=600)
    finally:
        if search.poll() is None:
            search.kill()
        stop_server(server)
    assert search.returncode == 0, (out + err)[-3000:]
    _assert_every_metric_reached_the_server(tmp_path)


def test_a_server_away_past_the_search_ends_it_in_one_line_and_resume_sends_everything(tmp_path, tiny_data):
    """The second trial cannot open its run within the patience and fails; the driver cannot read the outcomes.
    Nothing is lost: `--resume` once the server is back sends what waited and runs the failed trial again."""
    port = free_port()
    server = start_server(tmp_path / "server", port)
    patience = {"VARNET_TUNER_TRACKING_PATIENCE_S": "5"}
    search = _search_then_stop_the_server(tmp_path, tiny_data, server, f"http://127.0.0.1:{port}", patience)
    try:
        out, err = search.communicate(timeout=600)
        assert search.returncode == 2, (out + err)[-3000:]
        assert err.strip().splitlines()[-1] == (
            f"error: --tracking-uri http://127.0.0.1:{port}: the server stayed unreachable for 5 s when the trials "
            f"ended; their results wait in {tmp_path / 'tuner_runs' / 'o' / OUTBOX_DIR}; once it is back, finish "
            f"the search: python -m tuner search --name o --resume")
        assert any((tmp_path / "tuner_runs" / "o" / OUTBOX_DIR).iterdir())
        server = start_server(tmp_path / "server", port)
        resumed = subprocess.run([sys.executable, "-m", "tuner", "search", "--name", "o", "--resume"], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=600, env={**os.environ, **patience})
    finally:
        if search.poll() is None:
            search.kill()
        stop_server(server)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    _assert_every_metric_reached_the_server(tmp_path)
