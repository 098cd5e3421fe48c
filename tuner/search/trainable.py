"""The Ray Tune trainable: a thin wrapper that runs one trial as a `tuner.train.session.TrainingSession`.

Path of a trial: Tune config (flat dict) -> `TrialConfig` -> `TrialData` + session (memory probe, then
epochs) -> `tune.report(metrics, checkpoint)` each epoch, and an MLflow child run of the search's parent run.

A configuration that does not fit the memory budget ends as *infeasible*: its run is tagged with the
reason and its one report carries no SSIM, which the searcher tells Optuna as pruned; the search goes on.
ASHA stops a trial by raising SystemExit inside `tune.report`, which is why everything a finished epoch
owes (MLflow metrics, the checkpoint, the status) is settled before the report.
"""

from __future__ import annotations

import gc
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from tuner.config.trial import TrialConfig
from tuner.contract import INFEASIBLE_FLAG, METRIC, NODE_TAG, NODES_KEY, STATE_FILE
from tuner.search.progress import find_board
from tuner.tracking.runs import PARENT_TAG, Run, child_runs
from tuner.train import devices
from tuner.train.checkpoint import CheckpointError, TrainingCheckpoint
from tuner.train.loaders import TrialData
from tuner.train.memory import GIB, is_out_of_memory
from tuner.train.probe import OutOfBudget
from tuner.train.progress import DEFAULT_INTERVAL_S, ProgressLines, ProgressNote
from tuner.train.session import TrainingSession

NODES_FILE = "nodes.json"  # beside STATE_FILE in a trial's Tune checkpoint: the nodes that trained it


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
    outbox: str | None = None  # where writes wait while the tracking server is away
    progress_board: str | None = None  # name of the search's `ProgressBoard`: lines for the driver's console
    progress_interval_s: float = DEFAULT_INTERVAL_S  # the driver's setting, so every node uses the same


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Train one configuration for up to `context.max_epochs`, resuming from Tune's checkpoint if any."""
    device = devices.resolve_device()
    try:
        _train(config, context, device)
    finally:
        # Tune hands this worker process the next trial (no new Python, torch and MLflow per trial):
        # this trial's tensors are garbage now, and the allocator's cached blocks go back to the card.
        gc.collect()
        devices.release_cached_memory(device)


def _train(config: dict[str, Any], context: TrialContext, device: torch.device) -> None:
    requested = TrialConfig.from_flat(config)
    checkpoint, trained_on = _restored_checkpoint()
    trial = tune.get_context()
    outbox = Path(context.outbox) if context.outbox else None
    if checkpoint is not None:
        run = Run.reopen(context.tracking_uri, checkpoint.run_id, outbox)
    elif orphans := child_runs(context.tracking_uri, context.experiment_id, context.parent_run_id,
                               trial.get_trial_id()):
        # The trial started before and died before its first checkpoint: its run carries on, so the
        # trial keeps one run.
        run = Run.reopen(context.tracking_uri, orphans[0].info.run_id, outbox)
    else:
        run = Run.start(context.tracking_uri, context.experiment_id,
                        name=f"{trial.get_trial_name()} {requested.short_name()}",
                        tags={PARENT_TAG: context.parent_run_id, "search": context.search_name,
                              "tune.trial_id": trial.get_trial_id(), "model": requested.model.NAME}, outbox=outbox)
    # Which cluster node trains this trial (after a node failure, the node it moved to).
    node = ray.get_runtime_context().get_node_id()
    run.set_tags({NODE_TAG: node})
    # Reported with every epoch: Tune's own result log can lose the rows of a node that died (on a restore it
    # copies back the last synced file), and the record says which nodes trained each trial.
    nodes = trained_on if trained_on[-1:] == [node] else [*trained_on, node]
    reported_nodes = {NODES_KEY: ",".join(nodes)}
    label, board = trial.get_trial_name(), find_board(context.progress_board)

    def report(note: ProgressNote) -> None:
        run.log_metrics(note.metrics(), step=note.step)
        if board is not None:
            board.post.remote(f"  {label}  {note.line()}")

    progress = ProgressLines(report, context.progress_interval_s)
    session = TrainingSession(run, context.max_epochs, int(context.vram_budget_gb * GIB), progress)
    try:
        with session:
            cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
            data = TrialData(Path(context.data_root), requested.train, requested.augment, context.mask_bank,
                             device, cpus)
            if checkpoint is None:
                session.begin(data, requested, context.auto_checkpointing)
            else:
                session.restore(data, checkpoint)
            for epoch in session.epochs():
                with tempfile.TemporaryDirectory() as tmp:
                    session.checkpoint().save(Path(tmp) / STATE_FILE)
                    (Path(tmp) / NODES_FILE).write_text(json.dumps(nodes))
                    tune.report({**epoch.metrics, **reported_nodes}, checkpoint=tune.Checkpoint.from_directory(tmp))
    except Exception as exc:
        if not isinstance(exc, OutOfBudget) and not is_out_of_memory(exc):
            raise
        # Not a crash: this configuration needs more memory than the budget, and the search goes on.
        epoch = session.trainer.epoch if session.has_trainer else 0
        tune.report({**infeasible_result(epoch, session.infeasible_reason or type(exc).__name__), **reported_nodes})


def infeasible_result(epoch: int, reason: str) -> dict[str, Any]:
    """The report of a trial that ran out of memory: no SSIM (NaN), flagged for the searcher and the log."""
    return {"epoch": epoch, METRIC: float("nan"), INFEASIBLE_FLAG: 1, "infeasible_reason": reason}


def _restored_checkpoint() -> tuple[TrainingCheckpoint | None, list[str]]:
    """Tune's checkpoint of this trial, if any, and the nodes that trained it (in order)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, []
    with checkpoint.as_directory() as directory:
        return TrainingCheckpoint.load(Path(directory) / STATE_FILE), read_nodes(Path(directory) / NODES_FILE)


def read_nodes(path: Path) -> list[str]:
    """The node ids in a checkpoint's `NODES_FILE`; none when it is missing (a checkpoint of an older version)."""
    if not path.is_file():
        return []
    try:
        nodes = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a JSON list of node ids ({exc})") from exc
    if not isinstance(nodes, list) or not all(isinstance(node, str) for node in nodes):
        raise CheckpointError(f"{path}: expected a JSON list of node ids")
    return nodes
