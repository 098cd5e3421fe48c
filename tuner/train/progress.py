"""How far a training epoch is: throttled progress lines for trials, a progress bar for interactive commands.

An epoch on real data is tens of minutes (thousands of full-size slices at about half a second each
on a good card), so an epoch line alone leaves a user unable to tell a slow search from a hung one.
`TrainingSession` drives an `EpochProgress` per epoch; the trainer calls `advance` after every batch.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

from tuner.contract import SpecError

PROGRESS_ENV = "VARNET_TUNER_PROGRESS_S"
DEFAULT_INTERVAL_S = 30.0


class EpochProgress(Protocol):
    """Told when an epoch starts, after every training batch, and when its training part ends."""

    def begin(self, epoch: int, total_epochs: int, slices: int) -> None: ...
    def advance(self, slices: int, loss: float) -> None: ...
    def end(self) -> None: ...


def progress_interval_s() -> float:
    """Seconds between progress lines: `VARNET_TUNER_PROGRESS_S`, default 30."""
    text = os.environ.get(PROGRESS_ENV)
    if text is None:
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SpecError(f"{PROGRESS_ENV}: expected a positive number of seconds, got {text!r}")
    return value


@dataclass(frozen=True)
class ProgressNote:
    """Where an epoch's training stands: `done` of `total` slices, at `seconds_per_slice` so far."""

    epoch: int
    total_epochs: int
    done: int
    total: int
    seconds_per_slice: float
    running_loss: float

    @property
    def eta_s(self) -> float:
        return (self.total - self.done) * self.seconds_per_slice

    def line(self) -> str:
        return (f"epoch {self.epoch}/{self.total_epochs}  {self.done}/{self.total} slices  "
                f"{self.seconds_per_slice:.2f} s/slice  loss {self.running_loss:.4f}  "
                f"epoch ETA {format_duration(self.eta_s)}")

    def metrics(self) -> dict[str, float]:
        """MLflow metrics of the note, logged at step = slices trained in the run so far."""
        return {"slices_per_second": 1.0 / self.seconds_per_slice if self.seconds_per_slice > 0 else 0.0,
                "train_loss_running": self.running_loss}

    @property
    def step(self) -> int:
        return (self.epoch - 1) * self.total + self.done


class ProgressLines:
    """Calls `report(note)` at most every `interval_s` while an epoch trains (none for a shorter epoch)."""

    def __init__(self, report: Callable[[ProgressNote], None], interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.report = report
        self.interval_s = progress_interval_s() if interval_s is None else interval_s
        self.clock = clock
        self._epoch = self._total_epochs = self._total = self._done = 0
        self._loss_sum = 0.0
        self._batches = 0
        self._start = self._last = 0.0

    def begin(self, epoch: int, total_epochs: int, slices: int) -> None:
        self._epoch, self._total_epochs, self._total = epoch, total_epochs, slices
        self._done, self._loss_sum, self._batches = 0, 0.0, 0
        self._start = self._last = self.clock()

    def advance(self, slices: int, loss: float) -> None:
        self._done += slices
        self._loss_sum += loss
        self._batches += 1
        now = self.clock()
        if now - self._last >= self.interval_s and self._done < self._total:
            self._last = now
            self.report(ProgressNote(self._epoch, self._total_epochs, self._done, self._total,
                                     (now - self._start) / self._done, self._loss_sum / self._batches))

    def end(self) -> None:
        """Nothing to say: the epoch's own line follows."""


class ProgressBar:
    """A tqdm bar per epoch on stderr (slices, rate, ETA, running loss), for `finalize` and other commands."""

    def __init__(self) -> None:
        self._bar = None
        self._loss_sum = 0.0
        self._batches = 0

    def begin(self, epoch: int, total_epochs: int, slices: int) -> None:
        from tqdm import tqdm

        self._loss_sum, self._batches = 0.0, 0
        self._bar = tqdm(total=slices, desc=f"epoch {epoch}/{total_epochs}", unit="slice", leave=False,
                         file=sys.stderr, dynamic_ncols=True, mininterval=1.0)

    def advance(self, slices: int, loss: float) -> None:
        self._loss_sum += loss
        self._batches += 1
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{self._loss_sum / self._batches:.4f}", refresh=False)
            self._bar.update(slices)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def console_progress(out: TextIO) -> EpochProgress:
    """A bar where a person watches stderr; otherwise (a log file, a pipe) throttled lines on `out`."""
    if sys.stderr.isatty():
        return ProgressBar()
    return ProgressLines(lambda note: print(f"  {note.line()}", file=out, flush=True))


def format_duration(seconds: float) -> str:
    """`42 s`, `4 min 44 s`, `2 h 05 min`."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
