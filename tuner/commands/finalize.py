"""`python -m tuner finalize`: train a search's best configuration from scratch and register the model.

The run lives in `<storage>/<search>/final/`: `last.pt` (full training state, written every epoch,
so `--resume` continues an interrupted run), `best.pt` (the weights with the best validation SSIM),
`config.yaml` and `final.json`. It logs to its own MLflow run, tagged with the trial it promoted,
and registers the best weights in the MLflow model registry.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import mlflow
import numpy as np
import torch
import yaml

import models
from tuner.config.space import load_spec
from tuner.config.trial import TrialConfig
from tuner.contract import COMPLETED, FAILED, INTERRUPTED, FinalizeError
from tuner.search.record import SearchRecord, write_json
from tuner.tracking.runs import Run, child_runs, ui_command
from tuner.train import devices
from tuner.train.engine import Trainer
from tuner.train.loaders import TrialData
from tuner.train.memory import GIB
from tuner.train.probe import OutOfBudget, fit_to_budget


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


def find_search(storage: Path, name: str | None) -> Path:
    """The named search's directory, or the most recently started finished search under `storage`."""
    if name is not None:
        path = storage / name
        if not (path / "search.json").exists():
            raise FinalizeError(f"{path}: no search record (search.json) there")
        return path
    finished = [p.parent for p in storage.glob("*/search.json") if SearchRecord.load(p).best is not None]
    if not finished:
        raise FinalizeError(f"{storage}: no finished search with a best trial; run `python -m tuner search` first")
    return max(finished, key=lambda p: SearchRecord.load(p / "search.json").started)


def finalize(options: FinalizeOptions, out: TextIO = sys.stdout) -> FinalResult:
    """Train the best trial's configuration for the final epoch count and register it."""
    search_dir = find_search(options.storage, options.search)
    record = SearchRecord.load(search_dir / "search.json")
    best = record.best_trial()
    if best is None:
        raise FinalizeError(f"{search_dir}: the search has no best trial (status {record.status})")
    config = TrialConfig.from_flat(best.config)
    epochs = options.epochs or record.finalize_epochs
    final_dir = search_dir / "final"
    state = _prepare_directory(final_dir, options.resume)
    if state is not None:
        epochs = int(state["total_epochs"])

    device = devices.resolve_device()
    data = TrialData(Path(record.data_root), config.train, config.augment, record.mask_bank, device)
    resources = load_spec(record.space).resources
    budget = int(resources.vram_budget_gb * GIB)
    if state is None:
        try:
            trainer, _ = fit_to_budget(config, epochs, data.largest_batch(), budget, resources.auto_checkpointing,
                                       device)
        except OutOfBudget as exc:
            final_dir.rmdir()  # created empty just above; leave nothing half-made behind
            raise FinalizeError(f"{best.name} of {record.name}: {exc}") from None
        run = Run.start(record.tracking_uri, record.experiment_id, name=f"final {best.name} {config.short_name()}",
                        tags={"kind": "final", "final": "true", "search": record.name, "promoted_trial": best.name,
                              "promoted_run_id": _trial_run_id(record, best.trial_id), "model": config.model["name"]})
        run.log_params({**config.flat(), "epochs": epochs, "num_parameters": trainer.num_parameters})
        run.log_text(yaml.safe_dump(config.as_dict(), sort_keys=False), "config.yaml")
        (final_dir / "config.yaml").write_text(yaml.safe_dump(config.as_dict(), sort_keys=False))
        best_epoch, best_ssim = 0, -np.inf
    else:
        trainer = Trainer(TrialConfig.from_dict(state["config"]), epochs, device)
        trainer.load_state_dict(state)
        devices.cap_memory(trainer.device, budget)
        run = Run.reopen(record.tracking_uri, state["mlflow_run_id"])
        best_epoch, best_ssim = int(state["best_epoch"]), float(state["best_val_ssim"])
    config = trainer.config
    print(f"finalizing {best.name} of {record.name} ({config.short_name()}, {trainer.num_parameters:,} parameters)"
          f" for {epochs} epochs on {trainer.device.type}; checkpoints in {final_dir}", file=out, flush=True)

    status = FAILED
    try:
        start = time.perf_counter()
        first_epoch = trainer.epoch
        while trainer.epoch < epochs:
            train_batches = data.train_loader(trainer.epoch, trainer.val_losses)
            augmentation = data.augmentation_metrics()
            result = trainer.run_epoch(train_batches, data.val_loader())
            run.log_metrics({**augmentation, **result.metrics()}, step=result.epoch)
            if result.val.overall > best_ssim:
                best_epoch, best_ssim = result.epoch, result.val.overall
                _save_atomically({"epoch": result.epoch, "model": trainer.model.state_dict(),
                                  "config": config.as_dict(), "val_ssim": best_ssim}, final_dir / "best.pt")
            _save_atomically({**trainer.state_dict(), "mlflow_run_id": run.run_id, "total_epochs": epochs,
                              "best_epoch": best_epoch, "best_val_ssim": best_ssim}, final_dir / "last.pt")
            elapsed = time.perf_counter() - start
            remaining = elapsed / (trainer.epoch - first_epoch) * (epochs - trainer.epoch)
            print(f"  epoch {result.epoch}/{epochs}  loss {result.train_loss:.4f}  val SSIM {result.val.overall:.4f}"
                  f"  (best {best_ssim:.4f} @ {best_epoch})  {result.train_seconds + result.val_seconds:.1f} s"
                  f"  ~{remaining / 60:.1f} min left", file=out, flush=True)
        name = options.registered_name or f"varnet-tuner-{record.space_name}"
        version = _register(trainer, final_dir / "best.pt", record.tracking_uri, run.run_id, name)
        run.log_metrics({"best_val_ssim": best_ssim, "best_epoch": best_epoch}, step=epochs)
        run.set_tags({"registered_model": f"{name}/{version}"})
        status = COMPLETED
    except KeyboardInterrupt:
        status = INTERRUPTED
        raise
    finally:
        run.finish(status)
    result = FinalResult(final_dir, run.run_id, best_epoch, best_ssim, name, version)
    write_json(final_dir / "final.json", {**result.__dict__, "directory": str(final_dir), "search": record.name,
                                          "promoted_trial": best.name, "epochs": epochs})
    print(f"\nbest val SSIM {best_ssim:.4f} at epoch {best_epoch}\nweights: {final_dir / 'best.pt'}"
          f"\nregistered model: {name} version {version} (models:/{name}/{version})"
          f"\nMLflow run {run.run_id}:  {ui_command(record.tracking_uri, record.experiment_id)}", file=out)
    return result


def _prepare_directory(final_dir: Path, resume: bool) -> dict[str, Any] | None:
    """Create the final directory, or load its last state when resuming; never overwrite a finished run."""
    if final_dir.exists():
        if not resume:
            raise FinalizeError(f"{final_dir} already exists: pass --resume to continue it, or move it away")
        if not (final_dir / "last.pt").exists():
            raise FinalizeError(f"{final_dir}: nothing to resume (no last.pt)")
        return torch.load(final_dir / "last.pt", map_location="cpu", weights_only=False)
    if resume:
        raise FinalizeError(f"{final_dir}: nothing to resume")
    final_dir.mkdir(parents=True)
    return None


def _trial_run_id(record: SearchRecord, trial_id: str) -> str:
    runs = child_runs(record.tracking_uri, record.experiment_id, record.parent_run_id, trial_id)
    return runs[0].info.run_id if runs else "unknown"


def _register(trainer: Trainer, best_path: Path, tracking_uri: str, run_id: str, name: str) -> str:
    """Log the best weights as an MLflow PyTorch model (with the `models` code) and register a version."""
    model = trainer.model
    model.load_state_dict(torch.load(best_path, map_location=trainer.device, weights_only=False)["model"])
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            model.cpu().eval(), name="model", serialization_format="pickle",
            code_paths=[str(Path(models.__file__).parent)],
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"],
        )
    version = mlflow.register_model(info.model_uri, name)
    return str(version.version)


def _save_atomically(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
