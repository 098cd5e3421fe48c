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
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.atomic import atomic_path
from data.errors import UserError, first_line

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy 1
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

_NUMPY_RNG_GLOBALS = [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]

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
        for key in ("model", "config"):
            if not isinstance(state[key], dict):
                raise CheckpointError(f"{where}: '{key}' must be a mapping, found {type(state[key]).__name__}")
        trainer_state = {k: v for k, v in state.items() if k not in _SESSION_KEYS}
        return cls(trainer_state, str(state["mlflow_run_id"]), int(state.get("total_epochs", 0)),
                   int(state.get("best_epoch", 0)), float(state.get("best_val_ssim", -math.inf)))

    def save(self, path: Path) -> None:
        """Write to `path` atomically: a crash mid-write leaves the previous file (or none), never a torn one."""
        save_atomically(self.to_dict(), path)

    @classmethod
    def load(cls, path: Path) -> TrainingCheckpoint:
        state = read_torch_file(path, "training checkpoint")
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: expected a training checkpoint (a dict), found {type(state).__name__}")
        return cls.from_dict(state, str(path))


def read_torch_file(path: Path, what: str) -> Any:
    """The contents of a torch file that holds only tensors and plain values; nothing in it can run code.

    Checkpoints, weights and registered models are all such files. A file that needs any other Python
    object to load (a pickled class, a function) is refused with a `CheckpointError`, as is one that is
    not a readable torch file at all. NumPy's uint32 arrays are allowed: checkpoints written before the
    RNG state became tensors hold NumPy's generator state as one.
    """
    try:
        with torch.serialization.safe_globals(_NUMPY_RNG_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: refused to load: besides tensors and plain values it holds Python objects, "
                              f"which could run code (not a {what} this tool wrote)") from None
    except Exception as exc:  # torch.load raises anything from zip and OS errors
        raise CheckpointError(f"{path}: not a readable {what} ({first_line(exc)})") from None


def save_atomically(obj: Any, path: Path) -> None:
    """`torch.save` so that a reader (or a resume after a crash) sees the old file or the new one, never half."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
