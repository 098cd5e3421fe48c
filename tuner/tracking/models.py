"""Trained models in MLflow: log one to a run and register it, and fetch one back by its URI.

A registered model is stored as the run's `model/` artifact folder holding `weights.pt` (a state dict:
tensors only) and `config.yaml` (the `TrialConfig` it was trained with). Fetching rebuilds the network
from the configuration (`models.build_model`) and loads the weights with `weights_only=True`, so a
model in the store, tampered with or not, can never run code on the machine that loads it.

Like every MLflow call in the project these go through an explicit `MlflowClient` for one tracking
URI; nothing reads or changes MLflow's process-wide tracking URI or active run.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from models import build_model
from tuner.config.trial import TrialConfig
from tuner.config.yaml_file import read_yaml
from tuner.contract import CONFIG_FILE
from tuner.train.checkpoint import CheckpointError, read_torch_file

# MLflow draws progress bars on stderr while it downloads; the commands report their own progress.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
MODEL_ARTIFACT = "model"
WEIGHTS_FILE = "weights.pt"
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")
_RUN_URI = re.compile(r"runs:/(?P<run_id>[^/]+)/(?P<path>.+?)/?$")


@dataclass(frozen=True)
class FetchedModel:
    """A model rebuilt on the CPU from the tracking store, its configuration, and the run that logged it."""

    model: torch.nn.Module
    config: TrialConfig
    run_id: str | None


def register_model(tracking_uri: str, run_id: str, weights: dict[str, torch.Tensor], config: TrialConfig,
                   name: str) -> str:
    """Log `weights` and `config` as the run's "model" artifact and register a version of `name` from it;
    returns the version number.

    A run registers one version: called again for the same run (finalize resumed after a crash that
    came after registering) it returns the version already there.
    """
    client = MlflowClient(tracking_uri)
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        return str(min(int(v.version) for v in existing))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / MODEL_ARTIFACT
        folder.mkdir()
        torch.save({key: value.detach().cpu() for key, value in weights.items()}, folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(yaml.safe_dump(config.as_dict(), sort_keys=False))
        client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT}"
    return str(client.create_model_version(name, source, run_id=run_id).version)


def fetch_model(tracking_uri: str, uri: str) -> FetchedModel:
    """Rebuild the model at `models:/NAME/VERSION`, `models:/NAME@ALIAS` or `runs:/RUN_ID/PATH`.

    Raises ValueError for a URI of another shape or a folder that is not a model this tool registered
    (a model logged as a pickle by an older version is refused, not unpickled), and MlflowException /
    OSError when the store has no such model.
    """
    client = MlflowClient(tracking_uri)
    registered, logged = _MODEL_URI.match(uri), _RUN_URI.match(uri)
    with tempfile.TemporaryDirectory() as tmp:
        if registered is not None:
            name, alias = registered["name"], registered["alias"]
            version = (client.get_model_version_by_alias(name, alias) if alias is not None
                       else client.get_model_version(name, registered["version"]))
            run_id = version.run_id or None
            local = Path(download_artifacts(artifact_uri=version.source, dst_path=tmp, tracking_uri=tracking_uri))
        elif logged is not None:
            run_id = logged["run_id"]
            local = Path(client.download_artifacts(run_id, logged["path"], tmp))
        else:
            raise ValueError(f"expected models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH, got {uri!r}")
        if not (local / WEIGHTS_FILE).is_file() or not (local / CONFIG_FILE).is_file():
            raise ValueError(f"{uri} holds no {WEIGHTS_FILE} and {CONFIG_FILE} (a model registered by an older "
                             f"version is a pickle, which is not loaded: register it again with `tuner finalize`)")
        try:
            config = TrialConfig.from_dict(read_yaml(local / CONFIG_FILE))
            weights = read_torch_file(local / WEIGHTS_FILE, "weights file")
        except (yaml.YAMLError, CheckpointError) as exc:
            raise ValueError(f"{uri}: {' '.join(str(exc).split())}") from None
    model = build_model(config.model)
    model.load_state_dict(weights)
    return FetchedModel(model.eval(), config, run_id)
