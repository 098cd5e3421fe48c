"""A search and a finalize logging over HTTP to a real `mlflow server` on 127.0.0.1 (the UI's backend)."""

import io
import json
import urllib.request

import pytest

from tests.conftest import TINY_SPACE
from tests.mlflow_server import free_port, start_server, stop_server
from tuner.commands.finalize import FinalizeOptions, finalize
from tuner.config.space import load_space
from tuner.search.driver import SearchOptions, run_search
from tuner.search.storage import SearchStorage


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    port = free_port()
    proc = start_server(tmp_path_factory.mktemp("server"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


def test_search_and_finalize_log_through_an_mlflow_server(tmp_path, tiny_data, ray_instance, mlflow_server):
    spec = load_space(TINY_SPACE).replace(num_samples=2, max_epochs=1)
    options = SearchOptions(name="http", storage=SearchStorage(tmp_path / "runs"), data_root=tiny_data,
                            tracking_uri=mlflow_server)
    printed = io.StringIO()
    record = run_search(spec, options, out=printed)
    assert record.status == "completed" and record.best is not None, (printed.getvalue(), record.trials)

    api = f"{mlflow_server}/api/2.0/mlflow"
    found = _post(f"{api}/runs/search", {"experiment_ids": [record.experiment_id],
                                         "filter": f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'"})
    children = found["runs"]
    assert len(children) == 2
    for run in children:
        assert run["info"]["status"] == "FINISHED"
        history = json.loads(_get(f"{api}/metrics/get-history?run_id={run['info']['run_id']}&metric_key=val_ssim"))
        assert [m["step"] for m in history["metrics"]] == [1]
        artifacts = json.loads(_get(f"{api}/artifacts/list?run_id={run['info']['run_id']}"))
        assert "config.yaml" in [f["path"] for f in artifacts["files"]]

    result = finalize(FinalizeOptions(storage=options.storage.local, search="http", epochs=1), out=io.StringIO())
    version = json.loads(_get(f"{mlflow_server}/api/2.0/mlflow/model-versions/get?"
                              f"name={result.registered_name}&version={result.registered_version}"))
    assert version["model_version"]["run_id"] == result.run_id
    assert b"<html" in _get(mlflow_server).lower(), "the server also serves the UI"
