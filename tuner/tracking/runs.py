"""MLflow bookkeeping: the store, the experiment, and one run per search, trial or final training.

Everything goes through an explicit `MlflowClient` bound to an absolute tracking URI, because trials
run in other processes and other working directories, where MLflow's defaults would silently create
a second, lost store.
"""

from __future__ import annotations

import base64
import fcntl
import os
import posixpath
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.errors import first_line
from tuner.contract import COMPLETED, FAILED, INFEASIBLE, INTERRUPTED, STOPPED_EARLY, TrackingError
from tuner.tracking.outbox import Outbox, is_unreachable, may_answer, note_unreachable, patience_s, patiently

PARENT_TAG = "mlflow.parentRunId"
STATUS_TAG = "status"
# MLflow's run states for our statuses; a stopped-early trial finished as its scheduler intended.
RUN_STATES = {COMPLETED: "FINISHED", STOPPED_EARLY: "FINISHED", INFEASIBLE: "FINISHED", FAILED: "FAILED",
              INTERRUPTED: "KILLED"}
_BATCH = 900  # log_batch takes at most 1000 entries
# MLflow retries a failed HTTP call 7 times with a doubling backoff (minutes of silence); with the outbox
# a few seconds suffice before a write is queued. A user's own settings win.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def resolve_tracking_uri(uri: str | None, cwd: Path | None = None) -> str:
    """The absolute tracking URI: the argument, else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    cwd = (cwd or Path.cwd()).resolve()
    path = sqlite_path(uri)
    if path is not None:
        return f"sqlite:///{path if path.is_absolute() else cwd / path}"
    if uri.startswith(("http://", "https://", "postgresql", "mysql", "mssql", "databricks")):
        return uri
    raise TrackingError(
        f"--tracking-uri {uri!r}: expected sqlite:///path/to/mlflow.db or an http(s):// MLflow server "
        "(MLflow 3 has no file store)"
    )


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// tracking URI; None for a server."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


# The reachability probe of a tracking server: one try, a few seconds, before anything is started.
_PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def open_store(uri: str) -> None:
    """Make sure the store is usable before a search or finalize starts anything.

    A sqlite store that does not exist yet is created and migrated to MLflow's schema here, under a
    lock file beside it: two processes opening a new store at once would otherwise both migrate it, and
    one of them fails ("duplicate column") or leaves it half-migrated. A server is asked for one
    experiment, once, so that an unreachable one is one line now rather than minutes of retries later.
    """
    patience_s()  # a bad setting is an error now, not when the server first goes away
    path = sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                MlflowClient(uri).search_experiments(max_results=1)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    saved = {key: os.environ.get(key) for key in _PROBE_ENV}
    os.environ.update(_PROBE_ENV)
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except MlflowException as exc:
        raise TrackingError(f"--tracking-uri {uri}: no MLflow server answers there ({first_line(exc)})") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


UI_PORT = 5000


def ui_command(uri: str, experiment_id: str) -> str:
    """How to open the MLflow UI on this experiment's training runs.

    The MLflow 3 UI starts a new browser in its GenAI mode whatever the experiment says, so the URL
    names the training-runs view explicitly.
    """
    view = f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if uri.startswith("sqlite:///"):
        return (f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port {UI_PORT}\n"
                f"                 then open http://127.0.0.1:{UI_PORT}{view}")
    return f"open {uri.rstrip('/')}{view}"


def ensure_experiment(uri: str, name: str, artifact_store: str | None = None) -> str:
    """Id of the named experiment, created if missing. A new experiment keeps its artifacts under
    `artifact_store` (a URI such as s3://bucket/prefix) when given, else beside a sqlite store; a
    tracking server stores them where it was told to (`--artifacts-destination`)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if artifact_store is not None and urlsplit(uri).scheme not in ("http", "https"):
        artifact_location = f"{artifact_store}/mlartifacts/{name}"
    elif sqlite_path(uri) is not None:
        artifact_location = (sqlite_path(uri).parent / "mlartifacts").as_uri()
    experiment_id = client.create_experiment(name, artifact_location=artifact_location)
    # Without this tag the MLflow 3 UI opens the experiment on its GenAI overview instead of the runs.
    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "custom_model_development")
    return experiment_id


def child_runs(uri: str, experiment_id: str, parent_run_id: str, trial_id: str | None = None) -> list[Any]:
    """The trial runs of a search (or of one Ray Tune trial id), newest first."""
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}'"
    if trial_id is not None:
        query += f" and tags.`tune.trial_id` = '{trial_id}'"
    return patiently(lambda: MlflowClient(uri).search_runs([experiment_id], filter_string=query, max_results=10_000))


class Run:
    """One MLflow run driven through a client: params, per-epoch metrics, tags, text artifacts, status.

    With an `outbox` folder (and a tracking server, not a local sqlite store), writes that cannot reach
    the server are queued there and sent, in order, by the run's next write or by `flush`
    (`tuner.tracking.outbox`); reads and run creation wait for the server instead.
    """

    def __init__(self, uri: str, run_id: str, outbox: Path | None = None) -> None:
        self.client = MlflowClient(uri)
        self.run_id = run_id
        self.outbox = Outbox(outbox, run_id) if outbox is not None and sqlite_path(uri) is None else None

    @classmethod
    def start(cls, uri: str, experiment_id: str, name: str, tags: Mapping[str, str] | None = None,
              outbox: Path | None = None) -> Run:
        client = MlflowClient(uri)
        run = patiently(lambda: client.create_run(experiment_id, run_name=name, tags=dict(tags or {})))
        return cls(uri, run.info.run_id, outbox)

    @classmethod
    def reopen(cls, uri: str, run_id: str, outbox: Path | None = None) -> Run:
        """Continue logging to an existing run (a resumed trial or search)."""
        run = cls(uri, run_id, outbox)
        run._write({"op": "status", "status": "RUNNING"})
        return run

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which metric `key` has been logged to this run (queued writes sent first)."""
        self.flush()
        return {metric.step for metric in patiently(lambda: self.client.get_metric_history(self.run_id, key))}

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._write({"op": "params", "items": [[k, _param_value(v)] for k, v in sorted(params.items())]})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._write({"op": "metrics", "items": [[k, float(v), now, step] for k, v in sorted(metrics.items())]})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._write({"op": "tags", "items": [[k, str(v)] for k, v in tags.items()]})

    def log_text(self, text: str, artifact_file: str) -> None:
        self._write({"op": "text", "text": text, "file": artifact_file})

    def log_png(self, png: bytes, artifact_file: str) -> None:
        """Log image bytes as `artifact_file` (e.g. "images/brain_x4.png"), replacing an earlier one of that name.

        The bytes travel in the write itself, so a queued image does not depend on a file that is gone by
        the time the server is back.
        """
        self._write({"op": "png", "png": base64.b64encode(png).decode("ascii"), "file": artifact_file})

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._write({"op": "artifact", "path": str(path), "artifact_path": artifact_path})

    def finish(self, status: str) -> None:
        """Tag the run with our status and end it in the matching MLflow state."""
        self.set_tags({STATUS_TAG: status})
        self._write({"op": "status", "status": RUN_STATES[status]})

    def flush(self, force: bool = False) -> bool:
        """Send the writes waiting in the outbox; True when none is left. `force`: try even if the server
        was away moments ago."""
        return self.outbox is None or self.outbox.send(self._apply, force)

    def _write(self, write: dict[str, Any]) -> None:
        if self.outbox is None:
            self._apply(write)
            return
        # Nothing overtakes what is already waiting: the write is sent only once the outbox is empty.
        if self.flush() and may_answer():
            try:
                self._apply(write)
                return
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                note_unreachable()
        self.outbox.add(write)

    def _apply(self, write: dict[str, Any]) -> None:
        op, run_id = write["op"], self.run_id
        if op == "params":
            items = [Param(k, v) for k, v in write["items"]]
            for i in range(0, len(items), _BATCH):
                self.client.log_batch(run_id, params=items[i:i + _BATCH])
        elif op == "metrics":
            items = [Metric(k, v, timestamp, step) for k, v, timestamp, step in write["items"]]
            for i in range(0, len(items), _BATCH):
                self.client.log_batch(run_id, metrics=items[i:i + _BATCH])
        elif op == "tags":
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in write["items"]])
        elif op == "text":
            self.client.log_text(run_id, write["text"], write["file"])
        elif op == "png":
            folder, name = posixpath.split(write["file"])
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / name).write_bytes(base64.b64decode(write["png"]))
                self.client.log_artifact(run_id, str(Path(tmp) / name), folder or None)
        elif op == "artifact":
            self.client.log_artifact(run_id, write["path"], write["artifact_path"])
        elif op == "status" and write["status"] == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        elif op == "status":
            self.client.set_terminated(run_id, status=write["status"])
        else:
            raise ValueError(f"unknown queued MLflow write {op!r}")


def flush_outboxes(uri: str, folder: Path, *, patient: bool = False) -> None:
    """Send every run's queued writes in `folder`, trying the server now. `patient`: wait for an unreachable
    server (`patiently`), and raise ConnectionError if writes still wait after that."""
    def send_all() -> None:
        waiting = sum(not Run(uri, path.stem, folder).flush(force=True)
                      for path in (sorted(folder.glob("*.jsonl")) if folder.is_dir() else []))
        if waiting and patient:
            raise ConnectionError(f"{waiting} runs' writes still wait for {uri}")

    if patient:
        patiently(send_all)
    else:
        send_all()


def _param_value(value: Any) -> str:
    return "null" if value is None else str(value)
