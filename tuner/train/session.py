"""One configuration trained to its epoch count and logged to one MLflow run: what a trial and finalize share.

    with TrainingSession(run, total_epochs, budget_bytes) as session:
        session.begin(data, config, auto_checkpointing)   # or session.restore(data, TrainingCheckpoint.load(...))
        for epoch in session.epochs():                    # trains, validates, logs the epoch's metrics
            session.checkpoint().save(path)               # the one checkpoint format, resumable by both

`begin` probes one training step under the memory budget (turning activation checkpointing on when
that is what fits), and logs the parameters and the configuration actually trained. Both paths then
hold the device to the budget for the whole run. An epoch that is a new best, and the last epoch,
also log one figure per category of a fixed validation slice (`images/<category>.png`,
`tuner.train.figures`); `progress`, if given, hears about every training batch. Leaving the `with`
block ends the run with the status the session reached:

- completed: every epoch ran (and whatever the caller did afterwards succeeded);
- stopped early: the caller stopped after an epoch short of the end (ASHA raises SystemExit in
  `tune.report`), so the status is set before each epoch is handed out;
- infeasible: the configuration ran out of memory within the budget (the run is tagged with why;
  the exception goes on to the caller, which decides what that means);
- interrupted: Ctrl-C or a signal; failed: anything else (the traceback is logged as error.txt).
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import yaml

from data.errors import first_line
from data.snu import VarNetSample
from tuner.config.trial import TrialConfig
from tuner.contract import (
    COMPLETED,
    CONFIG_FILE,
    FAILED,
    INFEASIBLE,
    INFEASIBLE_TAG,
    INTERRUPTED,
    METRIC,
    STOPPED_EARLY,
)
from tuner.train import devices
from tuner.train.checkpoint import TrainingCheckpoint
from tuner.train.engine import EpochResult, Trainer
from tuner.train.figures import FIGURES_DIR, reconstruct_slice, showcase_slices, slice_figure_png
from tuner.train.loaders import TrialData
from tuner.train.memory import is_out_of_memory
from tuner.train.probe import OutOfBudget, fit_to_budget, warm_up
from tuner.train.progress import EpochProgress


class RunLog(Protocol):
    """The MLflow run a session logs to (`tuner.tracking.runs.Run`); a protocol so training imports no MLflow."""

    run_id: str

    def logged_steps(self, key: str) -> set[int]: ...
    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def log_text(self, text: str, artifact_file: str) -> None: ...
    def log_png(self, png: bytes, artifact_file: str) -> None: ...
    def finish(self, status: str) -> None: ...


@dataclass(frozen=True)
class SessionEpoch:
    """One finished epoch: the engine's result, the metrics logged for it, and whether it is the best so far."""

    result: EpochResult
    metrics: dict[str, float]
    improved: bool


class TrainingSession:
    """Trains one configuration for `total_epochs`, under `budget_bytes` of device memory, logging to `run`."""

    def __init__(self, run: RunLog, total_epochs: int, budget_bytes: int,
                 progress: EpochProgress | None = None) -> None:
        self.run = run
        self.total_epochs = total_epochs
        self.budget_bytes = budget_bytes
        self.progress = progress
        self.status = FAILED
        self.best_epoch = 0
        self.best_val_ssim = -math.inf
        self.infeasible_reason: str | None = None
        self._trainer: Trainer | None = None
        self._data: TrialData | None = None
        self._already_logged: set[int] = set()
        self._showcase: dict[str, VarNetSample] = {}

    @property
    def has_trainer(self) -> bool:
        return self._trainer is not None

    @property
    def trainer(self) -> Trainer:
        if self._trainer is None:
            raise RuntimeError("the session has no trainer yet: call begin() or restore() first")
        return self._trainer

    @property
    def config(self) -> TrialConfig:
        """The configuration being trained (checkpointing as actually used)."""
        return self.trainer.config

    def begin(self, data: TrialData, requested: TrialConfig, auto_checkpointing: bool,
              params: Mapping[str, Any] | None = None) -> None:
        """Start from scratch: log the requested parameters, fit one step to the budget, log what will train."""
        device = data.device
        self.run.log_params({**requested.flat(), "device": device.type, "loader_workers": data.workers,
                             **(params or {})})
        warm_up(device)
        trainer, step = fit_to_budget(requested, self.total_epochs, data.largest_batch(), self.budget_bytes,
                                      auto_checkpointing, device)
        self.run.log_params({"num_parameters": trainer.num_parameters})
        # A trial that died before its first checkpoint starts again from scratch in the run it began:
        # the same seed trains the same epochs, so the ones that reached MLflow are not logged again.
        self._already_logged = self.run.logged_steps(METRIC)
        if 0 not in self.run.logged_steps("step_seconds"):
            self.run.log_metrics({"step_peak_memory_mb": step.peak_mb, "step_seconds": step.seconds}, step=0)
        self.run.set_tags({"step_shape": "x".join(map(str, step.shape)),
                           "checkpointing": checkpointing_note(requested, trainer.config)})
        self.run.log_text(yaml.safe_dump(trainer.config.as_dict(), sort_keys=False), CONFIG_FILE)
        self._use(trainer, data)

    def restore(self, data: TrialData, checkpoint: TrainingCheckpoint) -> None:
        """Continue from a checkpoint: same configuration, weights, optimiser, schedule, RNG and best epoch."""
        trainer = Trainer(TrialConfig.from_dict(checkpoint.config), self.total_epochs, data.device)
        trainer.load_state_dict(checkpoint.trainer_state)
        self.best_epoch, self.best_val_ssim = checkpoint.best_epoch, checkpoint.best_val_ssim
        # Epochs past the checkpoint that reached MLflow before a crash: training them again gives the same
        # numbers (resume is exact), so they are not logged twice.
        self._already_logged = {step for step in self.run.logged_steps(METRIC) if step > checkpoint.epoch}
        self._use(trainer, data)

    def epochs(self) -> Iterator[SessionEpoch]:
        """Train the remaining epochs one at a time; each is logged to the run before it is handed out."""
        trainer, data = self.trainer, self._data
        assert data is not None  # set with the trainer
        while trainer.epoch < self.total_epochs:
            augmentation = data.augmentation_metrics()
            if self.progress is not None:
                self.progress.begin(trainer.epoch + 1, self.total_epochs, data.slices_per_epoch)
            result = trainer.run_epoch(data.train_loader(trainer.epoch, trainer.val_losses), data.val_loader(),
                                       self.progress.advance if self.progress is not None else None)
            if self.progress is not None:
                self.progress.end()
            improved = result.val.overall > self.best_val_ssim
            if improved:
                self.best_epoch, self.best_val_ssim = result.epoch, result.val.overall
            metrics = {**augmentation, **result.metrics()}
            if result.epoch not in self._already_logged:
                self.run.log_metrics(metrics, step=result.epoch)
                if improved or result.epoch >= self.total_epochs:
                    self._log_figures(result.epoch, improved)
            # Set before the caller sees the epoch: a scheduler may stop the trial inside its report.
            self.status = COMPLETED if result.epoch >= self.total_epochs else STOPPED_EARLY
            yield SessionEpoch(result, metrics, improved)
        self.status = COMPLETED

    def checkpoint(self) -> TrainingCheckpoint:
        """Everything `restore` needs, as of the last finished epoch."""
        return TrainingCheckpoint(self.trainer.state_dict(), self.run.run_id, self.total_epochs, self.best_epoch,
                                  self.best_val_ssim)

    def __enter__(self) -> TrainingSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None or isinstance(exc, SystemExit):
            pass
        elif isinstance(exc, KeyboardInterrupt):
            self.status = INTERRUPTED
        elif isinstance(exc, OutOfBudget) or is_out_of_memory(exc):
            self.status = INFEASIBLE
            self.infeasible_reason = first_line(exc)
            self.run.set_tags({INFEASIBLE_TAG: self.infeasible_reason})
        else:
            self.status = FAILED
            self.run.log_text("".join(traceback.format_exception(exc)), "error.txt")
        self.run.finish(self.status)

    def _use(self, trainer: Trainer, data: TrialData) -> None:
        self._trainer, self._data = trainer, data
        devices.cap_memory(trainer.device, self.budget_bytes)
        self._showcase = {category: data.val[index] for category, index in showcase_slices(data.val).items()}

    def _log_figures(self, epoch: int, improved: bool) -> None:
        """One figure per category of its fixed validation slice, replacing the run's earlier ones."""
        why = "new best" if improved else "last epoch"
        for category, sample in self._showcase.items():
            images = reconstruct_slice(self.trainer, sample)
            heading = (f"{category}: {images.fname} slice {images.slice_idx}, epoch {epoch} ({why}), "
                       f"SSIM {images.ssim:.4f}")
            self.run.log_png(slice_figure_png(images, heading), f"{FIGURES_DIR}/{category}.png")


def checkpointing_note(requested: TrialConfig, used: TrialConfig) -> str:
    """The run's `checkpointing` tag: on, off, or on because the budget needed it."""
    if used.model.checkpointing == requested.model.checkpointing:
        return "on" if used.model.checkpointing else "off"
    return "on (turned on to fit the memory budget)"
