"""Ctrl-C in the middle of a search, then `--resume`: every trial ends once, nothing is left running."""

import os
import signal
import subprocess
import sys
from collections import Counter

from mlflow.tracking import MlflowClient

from tests.conftest import TINY_SPACE
from tuner.search.record import SearchRecord

TRIALS = 4


def _search(tmp_path, tiny_data, *extra):
    return [sys.executable, "-m", "tuner", "search", str(TINY_SPACE), "--data", str(tiny_data), "--name", "r",
            "--num-samples", str(TRIALS), *extra]


def test_an_interrupted_search_resumes_to_completion(tmp_path, tiny_data):
    proc = subprocess.Popen(_search(tmp_path, tiny_data), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        ended = 0
        for line in proc.stdout:
            ended += (" completed " in line or " stopped early by " in line) and line.startswith("  t")
            if ended == 2:
                break
        proc.send_signal(signal.SIGINT)
        printed, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, printed
    assert "--resume" in printed
    record = SearchRecord.load(tmp_path / "tuner_runs" / "r" / "search.json")
    assert record.status == "interrupted"
    assert len(record.trials) < TRIALS

    changed = subprocess.run(_search(tmp_path, tiny_data, "--resume"), cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    assert changed.returncode == 2 and "a resumed search keeps the settings" in changed.stderr

    resume = [sys.executable, "-m", "tuner", "search", "--name", "r", "--resume"]
    resumed = subprocess.run(resume, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = SearchRecord.load(tmp_path / "tuner_runs" / "r" / "search.json")
    assert record.status == "completed"
    assert len(record.trials) == TRIALS
    assert {t.status for t in record.trials} <= {"completed", "stopped early"}

    client = MlflowClient(record.tracking_uri)
    runs = client.search_runs([record.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    # One finished run per trial; a trial cut off before its first checkpoint may also leave a KILLED one.
    finished = Counter(r.data.tags["tune.trial_id"] for r in runs if r.info.status == "FINISHED")
    assert finished == Counter({t.trial_id: 1 for t in record.trials})
    assert client.get_run(record.parent_run_id).data.tags["status"] == "completed"
