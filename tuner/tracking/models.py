"""Trained models in MLflow: log one to a run and register it, and fetch one back by its URI.

Like every MLflow call in the project these go through an explicit `MlflowClient` for one tracking
URI; nothing reads or changes MLflow's process-wide tracking URI or active run, so a trial, finalize
and a test in one process can each talk to their own store.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow.pytorch
import numpy as np
import torch
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import models

MODEL_ARTIFACT = "model"
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")
_RUN_URI = re.compile(r"runs:/(?P<run_id>[^/]+)/(?P<path>.+?)/?$")


@dataclass(frozen=True)
class FetchedModel:
    """A model loaded onto the CPU from the tracking store, and the run that logged it (if known)."""

    model: torch.nn.Module
    run_id: str | None


def register_model(tracking_uri: str, run_id: str, model: torch.nn.Module, name: str) -> str:
    """Log `model` (with the `models` package's code) as the run's "model" artifact and register a new
    version of `name` from it; returns the version number."""
    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / MODEL_ARTIFACT
        mlflow.pytorch.save_model(
            model.cpu().eval(), str(local), serialization_format="pickle",
            code_paths=[str(Path(models.__file__).parent)],
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"],
        )
        client.log_artifacts(run_id, str(local), MODEL_ARTIFACT)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT}"
    return str(client.create_model_version(name, source, run_id=run_id).version)


def fetch_model(tracking_uri: str, uri: str) -> FetchedModel:
    """Load the PyTorch model at `models:/NAME/VERSION`, `models:/NAME@ALIAS` or `runs:/RUN_ID/PATH`.

    Raises ValueError for a URI of another shape and MlflowException / OSError when the store has no
    such model.
    """
    client = MlflowClient(tracking_uri)
    registered, logged = _MODEL_URI.match(uri), _RUN_URI.match(uri)
    with tempfile.TemporaryDirectory() as tmp:
        if registered is not None:
            name, alias = registered["name"], registered["alias"]
            version = (client.get_model_version_by_alias(name, alias) if alias is not None
                       else client.get_model_version(name, registered["version"]))
            run_id = version.run_id or None
            local = download_artifacts(artifact_uri=version.source, dst_path=tmp, tracking_uri=tracking_uri)
        elif logged is not None:
            run_id = logged["run_id"]
            local = client.download_artifacts(run_id, logged["path"], tmp)
        else:
            raise ValueError(f"expected models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH, got {uri!r}")
        model = mlflow.pytorch.load_model(local, map_location="cpu")
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"expected a PyTorch model at {uri}, got {type(model).__name__}")
    return FetchedModel(model, run_id)


def download_text(tracking_uri: str, run_id: str, artifact_file: str) -> str | None:
    """A text artifact of a run, or None when the run has no such artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = MlflowClient(tracking_uri).download_artifacts(run_id, artifact_file, tmp)
        except (MlflowException, OSError):
            return None
        return Path(local).read_text()
