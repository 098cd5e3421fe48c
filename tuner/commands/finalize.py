"""`python -m tuner finalize`: train a search's best configuration from scratch and register the model.

The run lives in `<storage>/<search>/final/`: `last.pt` (full training state, written every epoch,
so `--resume` continues an interrupted run), `best.pt` (the weights with the best validation SSIM),
`config.yaml` and `final.json`. It logs to its own MLflow run, tagged with the trial it promoted,
and registers the best weights in the MLflow model registry.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from tuner.config.space import load_space
from tuner.config.trial import TrialConfig
from tuner.contract import (
    BEST_FILE,
    CONFIG_FILE,
    FINAL_DIR,
    FINAL_RECORD_FILE,
    LAST_FILE,
    OUTBOX_DIR,
    RECORD_FILE,
    FinalizeError,
    SearchError,
    SpecError,
)
from tuner.search.record import SearchRecord, find_search, write_json
from tuner.tracking.models import register_model
from tuner.tracking.outbox import patiently
from tuner.tracking.runs import Run, child_runs, flush_outboxes, open_store, ui_command
from tuner.train import devices
from tuner.train.checkpoint import TrainingCheckpoint, read_torch_file, save_atomically
from tuner.train.loaders import TrialData
from tuner.train.memory import GIB
from tuner.train.probe import OutOfBudget
from tuner.train.progress import console_progress, progress_interval_s
from tuner.train.session import TrainingSession


@dataclass(frozen=True)
class FinalizeOptions:
    storage: Path
    search: str | None = None
    epochs: int | None = None
    resume: bool = False
    registered_name: str | None = None


@dataclass(frozen=True)
class FinalResult:
    directory: Path
    run_id: str
    best_epoch: int
    best_val_ssim: float
    registered_name: str
    registered_version: str


def main(args: argparse.Namespace) -> int:
    if args.epochs is not None and args.epochs < 1:
        raise SpecError(f"--epochs: expected a positive integer, got {args.epochs}")
    progress_interval_s()  # a malformed setting is an error before anything starts
    finalize(FinalizeOptions(storage=args.storage.resolve(), search=args.search, epochs=args.epochs,
                             resume=args.resume, registered_name=args.registered_name))
    return 0


def finalize(options: FinalizeOptions, out: TextIO = sys.stdout) -> FinalResult:
    """Train the best trial's configuration for the final epoch count and register it."""
    try:
        search_dir = find_search(options.storage, options.search, "--search", finished=True)
    except SearchError as exc:
        raise FinalizeError(str(exc)) from None
    record = SearchRecord.load(search_dir / RECORD_FILE)
    best = record.best_trial()
    if best is None:
        raise FinalizeError(f"{search_dir}: the search has no best trial (status {record.status})")
    requested = TrialConfig.from_flat(best.config)
    open_store(record.tracking_uri)
    final_dir = search_dir / FINAL_DIR
    if options.resume:
        flush_outboxes(record.tracking_uri, final_dir / OUTBOX_DIR)  # writes an away server missed, first
    checkpoint = _prepare_directory(final_dir, options.resume)
    epochs = checkpoint.total_epochs if checkpoint is not None else options.epochs or record.finalize_epochs
    resources = load_space(record.space).resources
    if checkpoint is None:
        run = Run.start(record.tracking_uri, record.experiment_id, name=f"final {best.name} {requested.short_name()}",
                        tags={"kind": "final", "final": "true", "search": record.name, "promoted_trial": best.name,
                              "promoted_run_id": _trial_run_id(record, best.trial_id),
                              "model": requested.model.NAME}, outbox=final_dir / OUTBOX_DIR)
    else:
        run = Run.reopen(record.tracking_uri, checkpoint.run_id, final_dir / OUTBOX_DIR)
    session = TrainingSession(run, epochs, int(resources.vram_budget_gb * GIB), console_progress(out))
    try:
        with session:
            data = TrialData(Path(record.data_root), requested.train, requested.augment, record.mask_bank,
                             devices.resolve_device())
            if checkpoint is None:
                session.begin(data, requested, resources.auto_checkpointing, params={"epochs": epochs})
                (final_dir / CONFIG_FILE).write_text(yaml.safe_dump(session.config.as_dict(), sort_keys=False))
            else:
                session.restore(data, checkpoint)
            name = options.registered_name or f"varnet-tuner-{record.space_name}"
            _train(session, final_dir, f"{best.name} of {record.name}", out)
            best_weights = read_torch_file(final_dir / BEST_FILE, "weights file")["model"]
            # Registering needs the server; it waits for one that is away (and registers a run only once).
            version = patiently(lambda: register_model(record.tracking_uri, run.run_id, best_weights,
                                                       session.config, name))
            run.log_metrics({"best_val_ssim": session.best_val_ssim, "best_epoch": session.best_epoch}, step=epochs)
            run.set_tags({"registered_model": f"{name}/{version}"})
    except OutOfBudget as exc:
        if checkpoint is None:
            final_dir.rmdir()  # created empty above and nothing trained yet: leave nothing half-made behind
        raise FinalizeError(f"{best.name} of {record.name}: {exc}") from None
    if not run.flush(force=True):
        print(f"warning: the tracking server is away; this run's last MLflow writes wait in "
              f"{final_dir / OUTBOX_DIR}; `finalize --resume` sends them", file=out)
    result = FinalResult(final_dir, run.run_id, session.best_epoch, session.best_val_ssim, name, version)
    write_json(final_dir / FINAL_RECORD_FILE, {**result.__dict__, "directory": str(final_dir), "search": record.name,
                                          "promoted_trial": best.name, "epochs": epochs})
    print(f"\nbest val SSIM {result.best_val_ssim:.4f} at epoch {result.best_epoch}\nweights: {final_dir / BEST_FILE}"
          f"\nregistered model: {name} version {version} (models:/{name}/{version})"
          f"\nMLflow run {run.run_id}:  {ui_command(record.tracking_uri, record.experiment_id)}", file=out)
    return result


def _train(session: TrainingSession, final_dir: Path, what: str, out: TextIO) -> None:
    """The epochs, with `last.pt` after each and `best.pt` (weights only) whenever validation improves."""
    trainer = session.trainer
    print(f"finalizing {what} ({session.config.short_name()}, {trainer.num_parameters:,} parameters) for "
          f"{session.total_epochs} epochs on {trainer.device.type}; checkpoints in {final_dir}", file=out, flush=True)
    start, first_epoch = time.perf_counter(), trainer.epoch
    for epoch in session.epochs():
        result = epoch.result
        if epoch.improved:
            save_atomically({"epoch": result.epoch, "model": trainer.model.state_dict(),
                             "config": session.config.as_dict(), "val_ssim": result.val.overall},
                            final_dir / BEST_FILE)
        session.checkpoint().save(final_dir / LAST_FILE)
        elapsed = time.perf_counter() - start
        remaining = elapsed / (trainer.epoch - first_epoch) * (session.total_epochs - trainer.epoch)
        print(f"  epoch {result.epoch}/{session.total_epochs}  loss {result.train_loss:.4f}  val SSIM "
              f"{result.val.overall:.4f}  (best {session.best_val_ssim:.4f} @ {session.best_epoch})  "
              f"{result.train_seconds + result.val_seconds:.1f} s  ~{remaining / 60:.1f} min left",
              file=out, flush=True)


def _prepare_directory(final_dir: Path, resume: bool) -> TrainingCheckpoint | None:
    """Create the final directory, or load its last state when resuming; never overwrite a finished run."""
    if final_dir.exists():
        if not resume:
            raise FinalizeError(f"{final_dir} already exists: pass --resume to continue it, or move it away")
        if (final_dir / FINAL_RECORD_FILE).exists():
            raise FinalizeError(f"{final_dir}: finished already ({FINAL_RECORD_FILE} says which model version it "
                                f"registered); move the folder away to train again")
        if not (final_dir / LAST_FILE).exists():
            raise FinalizeError(f"{final_dir}: nothing to resume (no {LAST_FILE})")
        return TrainingCheckpoint.load(final_dir / LAST_FILE)
    if resume:
        raise FinalizeError(f"{final_dir}: nothing to resume")
    final_dir.mkdir(parents=True)
    return None


def _trial_run_id(record: SearchRecord, trial_id: str) -> str:
    runs = child_runs(record.tracking_uri, record.experiment_id, record.parent_run_id, trial_id)
    return runs[0].info.run_id if runs else "unknown"
