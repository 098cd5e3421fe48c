"""Load a trained model for inference from whatever a run left behind: a checkpoint, a run folder, MLflow.

`--model` is resolved in this order (the first that applies wins):

1. `models:/NAME/VERSION` (or `models:/NAME@ALIAS`) and `runs:/RUN_ID/model`: an MLflow PyTorch model
   in the tracking store, stored as weights plus the configuration they were trained with.
2. an existing file: a checkpoint holding "model" (a state dict) and "config" (`TrialConfig.as_dict()`):
   finalize's `best.pt` or `last.pt`, or a trial's `state.pt`.
3. an existing directory: its `best.pt` (a finalize folder), else `final/best.pt` (a search folder),
   else `state.pt` (a Ray Tune trial checkpoint folder).
4. a search name: `<storage>/NAME/final/best.pt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from data.errors import UserError, first_line
from models import build_model, count_parameters
from tuner.config.trial import ConfigError, TrialConfig
from tuner.contract import BEST_FILE, FINAL_DIR, STATE_FILE
from tuner.train.checkpoint import read_torch_file

MLFLOW_SCHEMES = ("models:/", "runs:/")


class ModelLoadError(UserError):
    """`--model` names nothing loadable; the message says what was tried."""


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode on the CPU, the configuration it was trained with (if known), and its source."""

    model: torch.nn.Module
    config: TrialConfig | None
    source: str

    @property
    def mixed_precision(self) -> str:
        """`train.mixed_precision` as trained; "auto" (the default) when the configuration is unknown."""
        return self.config.train.mixed_precision if self.config else "auto"

    def describe(self) -> str:
        name = self.config.short_name() if self.config else type(self.model).__name__
        return f"{name} ({count_parameters(self.model):,} parameters) from {self.source}"


def load_model(source: str, storage: Path, tracking_uri: str | None = None) -> LoadedModel:
    """Resolve `source` by the rules in the module docstring and load the model onto the CPU.

    `tracking_uri` (only for MLflow URIs) defaults as for `search`: $MLFLOW_TRACKING_URI, else
    sqlite:///<cwd>/mlflow.db.
    """
    if source.startswith(MLFLOW_SCHEMES):
        # MLflow is imported only here: checkpoints and folders load on machines without it (a GPU box).
        from tuner.tracking.runs import resolve_tracking_uri

        return _load_mlflow(source, resolve_tracking_uri(tracking_uri))
    path = Path(source)
    if path.is_file():
        return load_checkpoint(path)
    if path.is_dir():
        for candidate in (path / BEST_FILE, path / FINAL_DIR / BEST_FILE, path / STATE_FILE):
            if candidate.is_file():
                return load_checkpoint(candidate)
        raise ModelLoadError(f"--model {source}: the directory holds no {BEST_FILE}, final/{BEST_FILE} or "
                             f"{STATE_FILE} (expected a finalize, search or trial checkpoint folder)")
    search_best = storage / source / FINAL_DIR / BEST_FILE
    if search_best.is_file():
        return load_checkpoint(search_best)
    if (storage / source).is_dir():
        raise ModelLoadError(f"--model {source}: the search {storage / source} has no final/{BEST_FILE}; run "
                             f"`python -m tuner finalize --search {source}` or name a trial's checkpoint")
    raise ModelLoadError(f"--model {source}: no such file or directory, and no search {search_best.parent.parent} "
                         f"(expected a checkpoint, a finalize/search folder, a search name in {storage}, "
                         f"or an MLflow URI models:/NAME/VERSION or runs:/RUN_ID/model)")


def load_checkpoint(path: Path) -> LoadedModel:
    """Build the checkpoint's configured model and load its weights strictly."""
    state = read_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or not {"model", "config"} <= set(state):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ModelLoadError(f"{path}: expected a checkpoint with keys 'model' and 'config', found {found}")
    config = _config(state["config"], str(path))
    model = build_model(config.model)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ModelLoadError(f"{path}: the weights do not fit the configured {config.short_name()}: "
                             f"{first_line(exc)}") from None
    epoch = f", epoch {state['epoch']}" if "epoch" in state else ""
    return LoadedModel(model.eval(), config, f"{path}{epoch}")


def _load_mlflow(uri: str, tracking_uri: str) -> LoadedModel:
    from mlflow.exceptions import MlflowException

    from tuner.tracking.models import fetch_model
    from tuner.tracking.runs import sqlite_path

    store = sqlite_path(tracking_uri)
    if store is not None and not store.is_file():
        # Opening a sqlite store creates it: a mistyped path would leave an empty mlflow.db behind.
        raise ModelLoadError(f"--model {uri}: no MLflow store at {store} (give --tracking-uri or "
                             f"$MLFLOW_TRACKING_URI)")
    try:
        fetched = fetch_model(tracking_uri, uri)
    except (MlflowException, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"--model {uri}: cannot load it from the MLflow store {tracking_uri}: "
                             f"{first_line(exc)}") from None
    return LoadedModel(fetched.model, fetched.config, f"{uri} in {tracking_uri}")


def _config(raw: Any, where: str) -> TrialConfig:
    if not isinstance(raw, dict) or "model" not in raw:
        raise ModelLoadError(f"{where}: 'config' must be a {{model: ..., train: ...}} mapping, got {raw!r:.80}")
    try:
        return TrialConfig.from_dict(raw)
    except ConfigError as exc:
        raise ModelLoadError(f"{where}: {exc}") from None
