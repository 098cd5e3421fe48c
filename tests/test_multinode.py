"""A search over a real two-node Ray cluster on this machine (a head and a worker node, each its own raylet, started
with `ray start`) logging to a real `mlflow server`: trials are sized from the nodes, four trials train and log at
once on both nodes, and when the worker node is killed mid-trial the trial continues from its last checkpoint on the
head, with nothing recorded twice in MLflow."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import TINY_SPACE
from tests.mlflow_server import free_port, start_server, stop_server
from tuner.contract import COMPLETED, NODE_TAG, STOPPED_EARLY
from tuner.search.record import SearchRecord

RAY = str(Path(sys.executable).with_name("ray"))
TRIALS = 4
EPOCHS = 6


def _cluster_env() -> dict[str, str]:
    """What a node and a driver of a real cluster need: Ray's cluster mode (which the suite turns off for its local
    Ray) and the token Ray 2.60 asks of every process of a cluster started by `ray start`."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    return {**env, "RAY_AUTH_MODE": "token"}


def _node_ids(address: str, env: dict[str, str]) -> list[str]:
    status = subprocess.run([RAY, "status", "--address", address], capture_output=True, text=True, env=env,
                            timeout=60).stdout
    active = status.split("Active:", 1)[-1].split("Pending:", 1)[0]
    return re.findall(r"node_([0-9a-f]+)", active)


def _wait_for_nodes(address: str, env: dict[str, str], count: int) -> list[str]:
    deadline = time.monotonic() + 90
    while len(ids := _node_ids(address, env)) != count:
        assert time.monotonic() < deadline, f"the cluster did not reach {count} nodes: {ids}"
        time.sleep(1)
    return ids


def _start_node(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # --block keeps the node's processes in this process group, so that killing the group kills the node.
    return subprocess.Popen([RAY, "start", *args, "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
                             "--disable-usage-stats", "--block"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


@pytest.fixture
def two_node_cluster():
    """A head and a worker node of two CPUs each; yields (address, env, head id, worker id, worker process)."""
    env = _cluster_env()
    temp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths must fit 107 characters
    address = f"127.0.0.1:{free_port()}"
    head = _start_node(["--head", "--port", address.split(":")[1], "--include-dashboard", "false",
                        "--temp-dir", temp], env)
    nodes = [head]
    try:
        [head_id] = _wait_for_nodes(address, env, 1)
        worker = _start_node(["--address", address], env)
        nodes.append(worker)
        [worker_id] = [node for node in _wait_for_nodes(address, env, 2) if node != head_id]
        yield address, env, head_id, worker_id, worker
    finally:
        for proc in reversed(nodes):
            _kill_group(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _max_overlap(runs) -> int:
    """The most runs that were open (started, not yet ended) at one moment."""
    events = sorted([(run.info.start_time, 1) for run in runs] + [(run.info.end_time, -1) for run in runs])
    open_runs = most = 0
    for _, change in events:
        open_runs += change
        most = max(most, open_runs)
    return most


def test_a_search_uses_both_nodes_and_survives_losing_one(tmp_path, tiny_data, two_node_cluster):
    address, env, head_id, worker_id, worker = two_node_cluster
    space = tmp_path / "space.yaml"
    # Every trial trains all its epochs (no ASHA stop), so the one on the killed node has epochs left to train.
    raw = yaml.safe_load(TINY_SPACE.read_text())
    space.write_text(yaml.safe_dump({**raw, "resources": {"cpus_per_trial": 1},
                                     "asha": {"max_epochs": EPOCHS, "grace_period": EPOCHS}}))
    port = free_port()
    server = start_server(tmp_path / "server", port)
    store = MlflowClient(f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}")  # the server's own store, read beside it
    search = subprocess.Popen(
        [sys.executable, "-m", "tuner", "search", str(space), "--data", str(tiny_data), "--storage",
         str(tmp_path / "runs"), "--tracking-uri", f"http://127.0.0.1:{port}", "--name", "m", "--num-samples",
         str(TRIALS), "--address", address],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        # Until a trial on the worker node has finished its second epoch: a report returns only once the driver
        # has taken it, so the first epoch's checkpoint is the trial's, and the trial has epochs left to train.
        while True:
            assert search.poll() is None and time.monotonic() < deadline, "no trial ran two epochs on the worker"
            runs = store.search_runs(["1"], filter_string=f"tags.{NODE_TAG} = '{worker_id}' and "
                                                          f"attributes.status = 'RUNNING'")
            if any(len(store.get_metric_history(run.info.run_id, "val_ssim")) >= 2 for run in runs):
                break
            time.sleep(0.2)
        _kill_group(worker)
        out, err = search.communicate(timeout=600)
    finally:
        if search.poll() is None:
            search.kill()
        stop_server(server)
    assert search.returncode == 0, (out + err)[-3000:]
    assert "trials: 4 at a time (4 CPUs on 2 nodes, 1 per trial, no GPU)" in out

    record = SearchRecord.load(tmp_path / "runs" / "m" / "search.json")
    assert record.status == COMPLETED and len(record.trials) == TRIALS
    assert {t.status for t in record.trials} <= {COMPLETED, STOPPED_EARLY}
    assert {node for t in record.trials for node in t.nodes} == {head_id, worker_id}, "both nodes trained trials"
    moved = [t for t in record.trials if t.nodes == [worker_id, head_id]]
    assert moved, "the trial on the killed node went on on the head"

    runs = store.search_runs([record.experiment_id],
                             filter_string=f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'")
    assert _max_overlap(runs) == TRIALS, "the four trials logged to the server at once"
    assert Counter(run.data.tags["tune.trial_id"] for run in runs) == Counter({t.trial_id: 1 for t in record.trials})
    assert not [run for run in runs if run.info.status == "RUNNING"]
    for run in runs:
        steps = [m.step for m in store.get_metric_history(run.info.run_id, "val_ssim")]
        assert sorted(steps) == list(range(1, len(steps) + 1)), f"{run.info.run_name}: {steps}"
    for trial in moved:  # continued from its checkpoint: its first epoch was not trained again
        progress = (tmp_path / "runs" / "m").glob(f"{trial.name}_{trial.trial_id}/result.json")
        epochs = [json.loads(line)["epoch"] for path in progress for line in path.read_text().splitlines()]
        assert epochs == sorted(set(epochs)), epochs
