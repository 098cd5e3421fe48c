"""Writes to an MLflow tracking server that is away: kept on disk in order, sent when it answers again.

A search runs for days and a tracking server may restart in that time. Each run's writes (params,
metrics, tags, texts, its status) that fail because the server cannot be reached are appended to
`<outbox>/<run_id>.jsonl`, and every later write of that run first sends what waits there, in order.
The driver sends every outbox when a search ends and when it resumes. Calls that cannot be queued
(creating a run, reading a metric history) wait for the server instead, with a capped backoff, for up
to `patience_s()` before they fail: 10 minutes, or the seconds in the environment variable
`VARNET_TUNER_TRACKING_PATIENCE_S`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException

from data.atomic import atomic_path
from tuner.contract import TrackingError

T = TypeVar("T")
PATIENCE_ENV = "VARNET_TUNER_TRACKING_PATIENCE_S"
_MAX_DELAY_S = 30.0


def is_unreachable(exc: BaseException) -> bool:
    """True when `exc` says the server could not be reached (or is temporarily down), not that it refused."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, MlflowException):
        # MLflow wraps connection errors and timeouts as "API request to <url> failed with ...".
        return str(exc).startswith("API request to") or exc.error_code == "TEMPORARILY_UNAVAILABLE"
    return False


# After a write found the server away, writes go straight to the outbox for this long: each try costs
# seconds of MLflow's own retries, and a trial should not pay them on every metric.
_AWAY_FOR_S = 15.0
_away_until = 0.0


def note_unreachable() -> None:
    """Remember (in this process) that the server did not answer: writes queue without trying for a while."""
    global _away_until
    _away_until = time.monotonic() + _AWAY_FOR_S


def may_answer() -> bool:
    """False for a while after the server last did not answer: try it again only then."""
    return time.monotonic() >= _away_until


def patience_s() -> float:
    """How long a call that cannot be queued waits for an unreachable server (a positive number of seconds)."""
    raw = os.environ.get(PATIENCE_ENV, "600")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise TrackingError(f"{PATIENCE_ENV}: expected a positive number of seconds, got {raw!r}")
    return seconds


def patiently(call: Callable[[], T]) -> T:
    """`call()`, retried with a backoff capped at 30 s while the server cannot be reached, for up to `patience_s()`."""
    deadline, delay = time.monotonic() + patience_s(), 1.0
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

    def send(self, apply: Callable[[dict[str, Any]], None], force: bool = False) -> bool:
        """Send the waiting writes in order through `apply`; True when none is left.

        The first write that still cannot reach the server stops the sending; it and those after it
        stay queued (rewritten atomically, so a crash here loses nothing). Unless `force`d, nothing is
        tried while the server was away moments ago (`may_answer`).
        """
        if not self.waiting:
            return True
        if not force and not may_answer():
            return False
        writes = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        for index, write in enumerate(writes):
            try:
                apply(write)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                note_unreachable()
                with atomic_path(self.path) as tmp:
                    tmp.write_text("".join(json.dumps(w) + "\n" for w in writes[index:]))
                return False
        self.path.unlink()
        return True
