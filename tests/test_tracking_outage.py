"""The tracking server stops while a search runs and comes back: the search neither hangs nor dies, and no metric
is lost (a real `mlflow server` on 127.0.0.1, stopped and restarted on the same port and store)."""

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


def test_a_search_outlives_a_tracking_server_restart_and_loses_no_metric(tmp_path, tiny_data):
    port = free_port()
    server = start_server(tmp_path / "server", port)
    url = f"http://127.0.0.1:{port}"
    search = subprocess.Popen(
        [sys.executable, "-m", "tuner", "search", str(TINY_SPACE), "--data", str(tiny_data), "--name", "o",
         "--num-samples", str(TRIALS), "--tracking-uri", url],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    printed = []
    try:
        for line in search.stdout:
            printed.append(line)
            if line.startswith("  t") and " epoch 1/" in line:
                break
        stop_server(server)  # from the first trial's second epoch on, writes find no server
        time.sleep(OUTAGE_S)
        server = start_server(tmp_path / "server", port)
        rest, _ = search.communicate(timeout=600)
        printed.append(rest)
    finally:
        if search.poll() is None:
            search.kill()
        stop_server(server)
    assert search.returncode == 0, "".join(printed)[-3000:]
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
