"""The whole chain on tiny demo data: Ray Tune + TPE + ASHA -> trials -> MLflow -> finalize -> registry."""

import io

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from data.snu import SNUSliceDataset
from tests.conftest import TINY_SPACE
from tuner.commands.finalize import FinalizeOptions, finalize
from tuner.config.space import load_space
from tuner.contract import FinalizeError, SearchError
from tuner.search.driver import SearchOptions, run_search
from tuner.search.storage import SearchStorage
from tuner.tracking.models import fetch_model


@pytest.fixture(scope="module")
def search(tmp_path_factory, tiny_data, ray_instance):
    """One finished tiny search; the tests below read what it left behind."""
    work = tmp_path_factory.mktemp("search")
    spec = load_space(TINY_SPACE)
    options = SearchOptions(name="e2e", storage=SearchStorage(work / "runs"), data_root=tiny_data,
                            tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    out = io.StringIO()
    record = run_search(spec, options, out=out)
    return spec, options, record, out.getvalue()


def test_search_runs_every_trial_and_asha_stops_some(search):
    spec, options, record, printed = search
    assert record.status == "completed"
    assert len(record.trials) == spec.search.num_samples
    statuses = [t.status for t in record.trials]
    assert "stopped early" in statuses, statuses
    assert "completed" in statuses, statuses
    for trial in record.trials:
        assert 1 <= trial.epochs <= spec.asha.max_epochs
        assert (trial.epochs == spec.asha.max_epochs) == (trial.status == "completed")
        assert 0 < trial.val_ssim < 1
    completed = [t for t in record.trials if t.status == "completed"]
    assert record.best == max(completed, key=lambda t: t.val_ssim).name
    assert f"best trial: {record.best}" in printed
    assert f"mlflow ui --backend-store-uri {options.tracking_uri}" in printed
    assert (options.storage.local / "e2e" / "search.json").exists()


def test_mlflow_holds_a_parent_run_with_one_child_per_trial(search):
    spec, options, record, _ = search
    client = MlflowClient(options.tracking_uri)
    parent = client.get_run(record.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["status"] == "completed"
    assert parent.data.metrics["best_val_ssim"] == pytest.approx(record.best_trial().val_ssim)
    children = client.search_runs([record.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'")
    assert len(children) == len(record.trials)
    by_trial = {run.data.tags["tune.trial_id"]: run for run in children}
    for trial in record.trials:
        run = by_trial[trial.trial_id]
        assert run.info.run_name.startswith(f"{trial.name} varnet c")
        assert run.info.status == "FINISHED"
        assert run.data.tags["status"] == trial.status
        for key in ("model.num_cascades", "model.chans", "train.lr", "train.optimizer", "num_parameters"):
            assert key in run.data.params
        for metric in ("val_ssim", "train_loss", "lr", "epoch_seconds", "val_ssim_brain_x4", "val_ssim_knee_x8",
                       "val_ssim_x4", "val_ssim_x8"):
            history = client.get_metric_history(run.info.run_id, metric)
            assert [m.step for m in history] == list(range(1, trial.epochs + 1)), metric
        last = client.get_metric_history(run.info.run_id, "val_ssim")[-1].value
        assert last == pytest.approx(trial.val_ssim)
        with open(client.download_artifacts(run.info.run_id, "config.yaml")) as handle:
            config = yaml.safe_load(handle)
        assert config["model"]["num_cascades"] == trial.config["model.num_cascades"]
        assert config["train"]["lr"] == pytest.approx(trial.config["train.lr"])
    running = client.search_runs([record.experiment_id], filter_string="attributes.status = 'RUNNING'")
    assert running == []


def test_a_taken_search_name_is_refused(search, tiny_data):
    spec, options, _, _ = search
    with pytest.raises(SearchError, match="already exists"):
        run_search(spec, options)


def test_finalize_trains_the_best_config_and_registers_it(search, tiny_data):
    spec, options, record, _ = search
    out = io.StringIO()
    result = finalize(FinalizeOptions(storage=options.storage.local, search="e2e", epochs=2), out=out)
    assert result.best_epoch in (1, 2) and 0 < result.best_val_ssim < 1
    assert {"best.pt", "last.pt", "config.yaml", "final.json"} <= {p.name for p in result.directory.iterdir()}
    assert torch.load(result.directory / "last.pt", weights_only=False)["epoch"] == 2

    client = MlflowClient(options.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.tags["kind"] == "final" and run.data.tags["promoted_trial"] == record.best
    promoted = client.get_run(run.data.tags["promoted_run_id"])
    assert promoted.data.tags["tune.trial_id"] == record.best_trial().trial_id
    assert [m.step for m in client.get_metric_history(result.run_id, "val_ssim")] == [1, 2]

    version = client.get_model_version(result.registered_name, result.registered_version)
    assert version.run_id == result.run_id
    fetched = fetch_model(options.tracking_uri, f"models:/{result.registered_name}/{result.registered_version}")
    model = fetched.model
    assert fetched.config.as_dict() == yaml.safe_load((result.directory / "config.yaml").read_text())
    sample = SNUSliceDataset(tiny_data, "val")[0]
    with torch.no_grad():
        image = model((sample.kspace * sample.mask)[None], sample.mask[None])
    assert image.shape == (1, *sample.kspace.shape[1:3])
    assert torch.isfinite(image).all()

    with pytest.raises(FinalizeError, match="already exists"):
        finalize(FinalizeOptions(storage=options.storage.local, search="e2e", epochs=2), out=io.StringIO())
