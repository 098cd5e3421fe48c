"""The Ray Tune trainable: one trial = one configuration trained epoch by epoch, checkpointed and logged.

Path of a trial: Tune config (flat dict) -> `TrialConfig` -> `Trainer` + `TrialData` -> epochs ->
`tune.report(metrics, checkpoint)` and an MLflow child run of the search's parent run.

ASHA stops a trial by raising SystemExit inside `tune.report`, so everything a finished epoch owes
(MLflow metrics, the checkpoint, the status tag) happens before the report, and the MLflow run is
ended in `finally`.
"""

from __future__ import annotations

import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from ray import tune

from tuner.config import TrialConfig
from tuner.engine import Trainer
from tuner.loaders import TrialData
from tuner.tracking import PARENT_TAG, Run

STATE_FILE = "state.pt"


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one search shares; plain values so Ray can ship it to any node."""

    search_name: str
    data_root: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    max_epochs: int
    vram_budget_gb: float


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Train one configuration for up to `context.max_epochs`, resuming from Tune's checkpoint if any."""
    trial_config = TrialConfig.from_flat(config)
    state = _load_checkpoint()
    trial = tune.get_context()
    if state is None:
        run = Run.start(context.tracking_uri, context.experiment_id,
                        name=f"{trial.get_trial_name()} {trial_config.short_name()}",
                        tags={PARENT_TAG: context.parent_run_id, "search": context.search_name,
                              "tune.trial_id": trial.get_trial_id(), "model": trial_config.model["name"]})
    else:
        run = Run.reopen(context.tracking_uri, state["mlflow_run_id"])
    status = "failed"
    try:
        cap_gpu_memory(context.vram_budget_gb)
        trainer = Trainer(trial_config, total_epochs=context.max_epochs)
        if state is None:
            run.log_params({**trial_config.flat(), "num_parameters": trainer.num_parameters,
                            "device": trainer.device.type})
            run.log_text(yaml.safe_dump(trial_config.as_dict(), sort_keys=False), "config.yaml")
        else:
            trainer.load_state_dict(state)
        data = TrialData(Path(context.data_root), trial_config.train)
        while trainer.epoch < context.max_epochs:
            result = trainer.run_epoch(data.train_loader(trainer.epoch), data.val_loader())
            metrics = result.metrics()
            run.log_metrics(metrics, step=result.epoch)
            status = "completed" if result.epoch >= context.max_epochs else "stopped early"
            with tempfile.TemporaryDirectory() as tmp:
                torch.save({**trainer.state_dict(), "mlflow_run_id": run.run_id}, Path(tmp) / STATE_FILE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        status = "completed"
    except Exception:
        status = "failed"
        run.log_text(traceback.format_exc(), "error.txt")
        raise
    finally:
        run.finish(status)


def cap_gpu_memory(budget_gb: float) -> None:
    """Limit this process's CUDA allocations to the budget, so what fits here fits an 8 GB card."""
    if not torch.cuda.is_available():
        return
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, budget_gb * 2**30 / total))


def _load_checkpoint() -> dict[str, Any] | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)
