"""The Ray Tune trainable: one trial = one configuration trained epoch by epoch, checkpointed and logged.

Path of a trial: Tune config (flat dict) -> `TrialConfig` -> `Trainer` + `TrialData` -> epochs ->
`tune.report(metrics, checkpoint)` and an MLflow child run of the search's parent run.

Before epoch 1 the trial runs one training step on the largest training slice under the memory
budget (`tuner.train.probe`). A configuration that runs out of memory there, or later, ends as
*infeasible*: its run is tagged with the reason and its one report carries no SSIM, which the
searcher tells Optuna as pruned; the search goes on.

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

import ray
import torch
import yaml
from ray import tune

from tuner.config.trial import TrialConfig, count_parameters_of
from tuner.contract import COMPLETED, FAILED, INFEASIBLE, STOPPED_EARLY
from tuner.search.searcher import INFEASIBLE_FLAG, METRIC
from tuner.tracking.runs import INFEASIBLE_TAG, PARENT_TAG, Run
from tuner.train import devices
from tuner.train.engine import Trainer
from tuner.train.loaders import TrialData
from tuner.train.memory import GIB, is_out_of_memory
from tuner.train.probe import OutOfBudget, fit_to_budget, warm_up

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
    auto_checkpointing: bool
    mask_bank: str | None = None


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
    status = FAILED
    trainer: Trainer | None = None
    try:
        device = devices.resolve_device()
        cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
        data = TrialData(Path(context.data_root), trial_config.train, trial_config.augment, context.mask_bank,
                         device, cpus)
        budget = int(context.vram_budget_gb * GIB)
        if state is None:
            run.log_params({**trial_config.flat(), "num_parameters": count_parameters_of(trial_config),
                            "device": device.type, "loader_workers": data.workers})
            warm_up(device)
            trainer, step = fit_to_budget(trial_config, context.max_epochs, data.largest_batch(), budget,
                                          context.auto_checkpointing, device)
            run.log_metrics({"step_peak_memory_mb": step.peak_mb, "step_seconds": step.seconds}, step=0)
            run.set_tags({"step_shape": "x".join(map(str, step.shape)),
                          "checkpointing": _checkpointing_note(trial_config, trainer.config)})
            run.log_text(yaml.safe_dump(trainer.config.as_dict(), sort_keys=False), "config.yaml")
        else:
            # The configuration it trained with, which may have checkpointing turned on to fit.
            trainer = Trainer(TrialConfig.from_dict(state["config"]), context.max_epochs, device)
            trainer.load_state_dict(state)
        devices.cap_memory(trainer.device, budget)
        while trainer.epoch < context.max_epochs:
            train_batches = data.train_loader(trainer.epoch, trainer.val_losses)
            metrics = {**data.augmentation_metrics(), **trainer.run_epoch(train_batches, data.val_loader()).metrics()}
            epoch = int(metrics["epoch"])
            run.log_metrics(metrics, step=epoch)
            status = COMPLETED if epoch >= context.max_epochs else STOPPED_EARLY
            with tempfile.TemporaryDirectory() as tmp:
                torch.save({**trainer.state_dict(), "mlflow_run_id": run.run_id}, Path(tmp) / STATE_FILE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        status = COMPLETED
    except Exception as exc:
        if not isinstance(exc, OutOfBudget) and not is_out_of_memory(exc):
            status = FAILED
            run.log_text(traceback.format_exc(), "error.txt")
            raise
        # Not a crash: this configuration needs more memory than the budget, and the search goes on.
        status = INFEASIBLE
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        run.set_tags({INFEASIBLE_TAG: reason})
        tune.report(infeasible_result(trainer.epoch if trainer else 0, reason))
    finally:
        run.finish(status)


def _checkpointing_note(requested: TrialConfig, used: TrialConfig) -> str:
    if used.model.get("checkpointing") == requested.model.get("checkpointing"):
        return "on" if used.model.get("checkpointing") else "off"
    return "on (turned on to fit the memory budget)"


def infeasible_result(epoch: int, reason: str) -> dict[str, Any]:
    """The report of a trial that ran out of memory: no SSIM (NaN), flagged for the searcher and the log."""
    return {"epoch": epoch, METRIC: float("nan"), INFEASIBLE_FLAG: 1, "infeasible_reason": reason}


def _load_checkpoint() -> dict[str, Any] | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)
