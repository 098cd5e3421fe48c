"""Searches started at the same moment in one folder and one new sqlite store: different names both finish, each
with its own parent run and trials; a name already taken is refused (real processes, each with its own Ray)."""

import subprocess
import sys

from mlflow.tracking import MlflowClient

from tests.conftest import TINY_SPACE
from tuner.search.record import SearchRecord


def test_two_searches_at_once_finish_apart_and_a_taken_name_is_refused(tmp_path, tiny_data):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def search(name: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "tuner", "search", str(TINY_SPACE), "--data", str(tiny_data), "--storage",
             str(tmp_path / "runs"), "--tracking-uri", store, "--name", name, "--num-samples", "2",
             "--max-epochs", "1"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    procs = [search("a"), search("b"), search("a")]
    try:
        errors = [proc.communicate(timeout=400)[1] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    codes = [proc.returncode for proc in procs]
    assert codes[1] == 0, errors[1][-2000:]
    assert sorted([codes[0], codes[2]]) == [0, 2], errors
    refused = (errors[0] if codes[0] == 2 else errors[2]).strip()
    assert refused == f"error: {tmp_path / 'runs' / 'a'} already exists: choose another --name, or pass --resume " \
                      f"to continue it"

    records = [SearchRecord.load(tmp_path / "runs" / name / "search.json") for name in ("a", "b")]
    assert [r.status for r in records] == ["completed", "completed"]
    assert records[0].parent_run_id != records[1].parent_run_id
    client = MlflowClient(store)
    for record in records:
        children = client.search_runs(
            [record.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'")
        assert sorted(r.data.tags["tune.trial_id"] for r in children) == sorted(t.trial_id for t in record.trials)
        assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
        assert all(r.data.tags["search"] == record.name for r in children)
    every_run = client.search_runs([records[0].experiment_id])
    assert len(every_run) == 2 + 4 and not [r for r in every_run if r.info.status == "RUNNING"]
