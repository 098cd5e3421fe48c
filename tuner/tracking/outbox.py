"""Writes to an MLflow tracking server that is away: kept on disk in order, sent when it answers again.

A search runs for days and a tracking server may restart in that time. Each run's writes (params,
metrics, tags, texts, its status) that fail because the server cannot be reached are appended to
`<outbox>/<run_id>.jsonl`, and every later write of that run first sends what waits there, in order.
The driver sends every outbox when a search ends and when it resumes. Calls that cannot be queued
(creating a run, reading a metric history) wait for the server instead, with a capped backoff, for up
to `PATIENCE_S` before they fail.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException

from data.atomic import atomic_path

T = TypeVar("T")
PATIENCE_S = 600.0
_MAX_DELAY_S = 30.0


def is_unreachable(exc: BaseException) -> bool:
    """True when `exc` says the server could not be reached (or is temporarily down), not that it refused."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, MlflowException):
        # MLflow wraps connection errors and timeouts as "API request to <url> failed with ...".
        return str(exc).startswith("API request to") or exc.error_code == "TEMPORARILY_UNAVAILABLE"
    return False


def patiently(call: Callable[[], T], patience_s: float = PATIENCE_S) -> T:
    """`call()`, retried with a backoff capped at 30 s while the server cannot be reached, for up to `patience_s`."""
    deadline, delay = time.monotonic() + patience_s, 1.0
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_unreachable(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, _MAX_DELAY_S)


class Outbox:
    """The queued writes of one run, one JSON object a line, oldest first."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.path = folder / f"{run_id}.jsonl"

    @property
    def waiting(self) -> bool:
        return self.path.exists()

    def add(self, write: dict[str, Any]) -> None:
        """Queue `write` after everything already waiting; on disk (fsync'd) before this returns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(write) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def send(self, apply: Callable[[dict[str, Any]], None]) -> bool:
        """Send the waiting writes in order through `apply`; True when none is left.

        The first write that still cannot reach the server stops the sending; it and those after it
        stay queued (rewritten atomically, so a crash here loses nothing).
        """
        if not self.waiting:
            return True
        writes = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        for index, write in enumerate(writes):
            try:
                apply(write)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                with atomic_path(self.path) as tmp:
                    tmp.write_text("".join(json.dumps(w) + "\n" for w in writes[index:]))
                return False
        self.path.unlink()
        return True
