"""`--storage s3://...`: Ray's experiment, the trials' checkpoints, the record and MLflow's artifacts go to a
real S3-compatible server (moto, on 127.0.0.1), and a search interrupted with Ctrl-C on one machine resumes
from it on another that has none of its files, with the settings it started with, every trial ending once."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY_SPACE
from tests.mlflow_server import free_port
from tuner.search.record import SearchRecord

BUCKET = "lab"
PREFIX = "searches"
TRIALS = 3


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one empty bucket; the AWS variables a user would set for it."""
    import boto3

    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.3)
        boto3.client("s3", endpoint_url=endpoint, **_credentials(env)).create_bucket(Bucket=BUCKET)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _credentials(env):
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "region_name": env["AWS_DEFAULT_REGION"]}


def _keys(env) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], **_credentials(env))
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _run(args, cwd, env, **kwargs):
    return subprocess.run([sys.executable, "-m", "tuner", "search", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, **kwargs)


def test_a_search_on_s3_storage_resumes_on_a_machine_without_its_files(tmp_path, tiny_data, s3_endpoint):
    storage = f"s3://{BUCKET}/{PREFIX}"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", "search", str(TINY_SPACE), "--data", str(tiny_data), "--name", "r",
         "--num-samples", str(TRIALS), "--storage", storage, "--tracking-uri", store],
        cwd=first, env={**os.environ, **s3_endpoint}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith("  t") and (" completed " in line or " stopped early by " in line):
                break
        proc.send_signal(signal.SIGINT)
        printed, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, printed
    assert "python -m tuner search --name r --resume" in printed
    keys = _keys(s3_endpoint)
    assert f"{PREFIX}/r/search.json" in keys and f"{PREFIX}/r/space.yaml" in keys
    assert any(key.startswith(f"{PREFIX}/r/experiment_state") for key in keys), keys
    assert any("/checkpoint_" in key and key.endswith("state.pt") for key in keys), "trial checkpoints are in S3"
    assert any(key.startswith(f"{PREFIX}/mlartifacts/") and key.endswith("space.yaml") for key in keys), \
        "MLflow's artifacts go to the same store"

    taken = _run([str(TINY_SPACE), "--data", str(tiny_data), "--name", "r", "--storage", storage,
                  "--tracking-uri", store], second, s3_endpoint, timeout=120)
    assert taken.returncode == 2
    assert taken.stderr.strip() == f"error: {storage}/r already exists: choose another --name, or pass --resume " \
                                   f"to continue it"

    changed = _run(["--name", "r", "--resume", "--storage", storage, "--num-samples", "9"], second, s3_endpoint,
                   timeout=120)
    assert changed.returncode == 2 and "a resumed search keeps the settings" in changed.stderr

    resumed = _run(["--name", "r", "--resume", "--storage", storage], second, s3_endpoint, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = SearchRecord.load(second / "tuner_runs" / "r" / "search.json")
    assert record.status == "completed" and len(record.trials) == TRIALS
    assert record.space == str(second / "tuner_runs" / "r" / "space.yaml")
    client = MlflowClient(store)
    runs = client.search_runs([record.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    finished = Counter(r.data.tags["tune.trial_id"] for r in runs if r.info.status == "FINISHED")
    assert finished == Counter({t.trial_id: 1 for t in record.trials})
    assert client.get_run(record.parent_run_id).data.tags["status"] == "completed"


def test_a_storage_uri_that_cannot_be_opened_is_one_line_and_writes_nothing(tmp_path, tiny_data, s3_endpoint):
    """An unknown scheme fails before the data check, the store or Ray: no folder, no sqlite file."""
    result = _run([str(TINY_SPACE), "--data", str(tiny_data), "--storage", "nosuch://bucket/x"], tmp_path,
                  s3_endpoint, timeout=120)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("error: --storage nosuch://bucket/x: cannot open it (") and "\n" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given, expected", [("runs", "runs"), ("file:///srv/runs", "/srv/runs")])
def test_a_folder_or_a_file_uri_is_local_storage(tmp_path, monkeypatch, given, expected):
    """Only a URI with a scheme pyarrow opens remotely moves Ray's state; a folder keeps everything in it."""
    from tuner.search.storage import SearchStorage

    monkeypatch.chdir(tmp_path)
    storage = SearchStorage.parse(given)
    assert storage.remote is None
    assert storage.local == (tmp_path / expected).resolve()
    assert storage.experiment("s") == f"{storage.local}/s"
