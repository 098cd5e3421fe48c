"""The one training checkpoint: everything a search trial or finalize needs to continue exactly.

A checkpoint is a torch file holding one flat dict: the `Trainer` state (weights under "model", the
trained configuration under "config", optimiser, schedule, gradient scaler, RNG, finished epochs and
validation losses) plus the session's own bookkeeping: the MLflow run it logs to, the epoch count
its schedule was built for, and its best epoch so far. Because "model" and "config" sit at the top,
a checkpoint also loads for inference (`tuner reconstruct --model`).

Trials write it as `state.pt` inside each Ray Tune checkpoint, finalize as `final/last.pt`; both
go through `TrainingCheckpoint.save`, which never leaves a half-written file under the final name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from data.atomic import atomic_path
from data.errors import UserError

# Keys the session adds to the trainer's state.
_SESSION_KEYS = ("mlflow_run_id", "total_epochs", "best_epoch", "best_val_ssim")


class CheckpointError(UserError):
    """A file is not a readable training checkpoint; the message names it and says what was found."""


@dataclass(frozen=True)
class TrainingCheckpoint:
    """A `Trainer.state_dict()` with the MLflow run it belongs to and the session's progress."""

    trainer_state: dict[str, Any]
    run_id: str
    total_epochs: int
    best_epoch: int = 0
    best_val_ssim: float = -math.inf

    @property
    def epoch(self) -> int:
        """Epochs finished when it was written."""
        return int(self.trainer_state["epoch"])

    @property
    def config(self) -> dict[str, Any]:
        """The configuration it trained with (`TrialConfig.as_dict()`), checkpointing as actually used."""
        return self.trainer_state["config"]

    def to_dict(self) -> dict[str, Any]:
        return {**self.trainer_state, "mlflow_run_id": self.run_id, "total_epochs": self.total_epochs,
                "best_epoch": self.best_epoch, "best_val_ssim": self.best_val_ssim}

    @classmethod
    def from_dict(cls, state: dict[str, Any], where: str) -> TrainingCheckpoint:
        """Split a loaded dict; `total_epochs` and the best epoch are absent in trial checkpoints written
        before they were one format, and default to "unknown" (0) and "none yet"."""
        missing = {"model", "config", "epoch", "mlflow_run_id"} - set(state)
        if missing:
            raise CheckpointError(f"{where}: not a training checkpoint (missing {', '.join(sorted(missing))})")
        trainer_state = {k: v for k, v in state.items() if k not in _SESSION_KEYS}
        return cls(trainer_state, str(state["mlflow_run_id"]), int(state.get("total_epochs", 0)),
                   int(state.get("best_epoch", 0)), float(state.get("best_val_ssim", -math.inf)))

    def save(self, path: Path) -> None:
        """Write to `path` atomically: a crash mid-write leaves the previous file (or none), never a torn one."""
        save_atomically(self.to_dict(), path)

    @classmethod
    def load(cls, path: Path) -> TrainingCheckpoint:
        try:
            # Our checkpoints carry NumPy RNG state and plain dicts, which weights_only refuses.
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # torch.load raises anything from pickle, zip and OS errors
            raise CheckpointError(f"{path}: not a readable training checkpoint ({exc})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: expected a training checkpoint (a dict), found {type(state).__name__}")
        return cls.from_dict(state, str(path))


def save_atomically(obj: Any, path: Path) -> None:
    """`torch.save` so that a reader (or a resume after a crash) sees the old file or the new one, never half."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
