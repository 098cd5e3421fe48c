"""The one training session behind trials and finalize: one checkpoint format, resumed exactly by both, and
the configuration actually trained is what both log (real tiny data, a real sqlite MLflow store)."""

import io
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from tests.search_records import one_trial_search
from tuner.commands.finalize import FinalizeOptions, finalize
from tuner.config.trial import TrialConfig
from tuner.contract import COMPLETED, INFEASIBLE, LAST_FILE, STOPPED_EARLY, FinalizeError
from tuner.tracking.runs import Run, ensure_experiment
from tuner.train.checkpoint import CheckpointError, TrainingCheckpoint
from tuner.train.loaders import TrialData
from tuner.train.memory import MIB
from tuner.train.probe import OutOfBudget
from tuner.train.session import TrainingSession

TINY = {"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2, "model.pools": 2, "model.sens_chans": 2,
        "model.sens_pools": 2, "train.lr": 3e-3, "train.train_slices_per_epoch": 4, "train.val_slices": 4,
        "train.scheduler": "cosine"}
# About 170 MB for a step without activation checkpointing and 95 MB with it (tests/test_feasibility.py).
DEEP = {"model.name": "varnet", "model.num_cascades": 6, "model.chans": 8, "model.pools": 2, "model.sens_chans": 2,
        "model.sens_pools": 2, "train.batch_size": 8, "train.train_slices_per_epoch": 8, "train.val_slices": 2}
FITS_ONLY_CHECKPOINTED = 130 * MIB
CPU = torch.device("cpu")


def _store(tmp_path: Path) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, ensure_experiment(uri, "session")


def _run(uri: str, experiment_id: str, name: str) -> Run:
    return Run.start(uri, experiment_id, name=name)


def _config_artifact(uri: str, run_id: str, tmp_path: Path) -> dict:
    return yaml.safe_load(Path(MlflowClient(uri).download_artifacts(run_id, "config.yaml", str(tmp_path))).read_text())


def test_a_checkpoint_resumes_to_the_same_epochs_and_one_run(tiny_data, tmp_path):
    """Two epochs straight, and one epoch + save + load + restore + one epoch, give equal SSIMs and weights;
    the resumed session logs to the same MLflow run, each step once."""
    uri, experiment = _store(tmp_path)
    config = TrialConfig.from_flat(TINY)
    straight = TrainingSession(_run(uri, experiment, "straight"), 2, 2**30)
    with straight:
        straight.begin(TrialData(tiny_data, config.train, device=CPU), config, auto_checkpointing=True)
        straight_ssim = [epoch.result.val.overall for epoch in straight.epochs()]

    first = TrainingSession(_run(uri, experiment, "interrupted"), 2, 2**30)
    with first:
        first.begin(TrialData(tiny_data, config.train, device=CPU), config, auto_checkpointing=True)
        epochs = first.epochs()
        resumed_ssim = [next(epochs).result.val.overall]
        first.checkpoint().save(tmp_path / "state.pt")
    assert first.status == STOPPED_EARLY, "a session left after an epoch short of the end stopped early"

    checkpoint = TrainingCheckpoint.load(tmp_path / "state.pt")
    assert (checkpoint.epoch, checkpoint.total_epochs, checkpoint.run_id) == (1, 2, first.run.run_id)
    second = TrainingSession(Run.reopen(uri, checkpoint.run_id), 2, 2**30)
    with second:
        second.restore(TrialData(tiny_data, config.train, device=CPU), checkpoint)
        resumed_ssim += [epoch.result.val.overall for epoch in second.epochs()]
    assert second.status == COMPLETED
    assert resumed_ssim == straight_ssim
    for name, tensor in straight.trainer.model.state_dict().items():
        torch.testing.assert_close(second.trainer.model.state_dict()[name], tensor, rtol=0, atol=0)
    history = MlflowClient(uri).get_metric_history(first.run.run_id, "val_ssim")
    assert sorted(m.step for m in history) == [1, 2]
    run = MlflowClient(uri).get_run(first.run.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["status"] == COMPLETED


def test_the_trial_logs_the_configuration_it_trained(tiny_data, tmp_path):
    """A budget that only fits with activation checkpointing: the run's config.yaml and the checkpoint
    carry checkpointing on, the parameters what was asked, and a tag says why they differ."""
    uri, experiment = _store(tmp_path)
    requested = TrialConfig.from_flat(DEEP)
    session = TrainingSession(_run(uri, experiment, "trial"), 1, FITS_ONLY_CHECKPOINTED)
    with session:
        session.begin(TrialData(tiny_data, requested.train, device=CPU), requested, auto_checkpointing=True)
        for _ in session.epochs():
            session.checkpoint().save(tmp_path / "state.pt")
    run = MlflowClient(uri).get_run(session.run.run_id)
    assert _config_artifact(uri, run.info.run_id, tmp_path)["model"]["checkpointing"] is True
    assert run.data.params["model.checkpointing"] == "False", "the parameters are the search's choice"
    assert run.data.tags["checkpointing"] == "on (turned on to fit the memory budget)"
    assert TrainingCheckpoint.load(tmp_path / "state.pt").config["model"]["checkpointing"] is True


def test_a_configuration_that_cannot_fit_ends_its_run_infeasible(tiny_data, tmp_path):
    uri, experiment = _store(tmp_path)
    requested = TrialConfig.from_flat(DEEP)
    session = TrainingSession(_run(uri, experiment, "trial"), 1, FITS_ONLY_CHECKPOINTED)
    with pytest.raises(OutOfBudget), session:
        session.begin(TrialData(tiny_data, requested.train, device=CPU), requested, auto_checkpointing=False)
    run = MlflowClient(uri).get_run(session.run.run_id)
    assert run.data.tags["status"] == INFEASIBLE and "does not fit" in run.data.tags["infeasible_reason"]


def test_finalize_logs_what_it_trained_and_resumes_from_the_same_checkpoint_format(tiny_data, tmp_path):
    """Finalize trains through the same session: its config.yaml (folder and MLflow) says checkpointing on
    when the budget needed it, and its last.pt is a `TrainingCheckpoint` that --resume continues."""
    uri, experiment = _store(tmp_path)
    storage = tmp_path / "runs"
    one_trial_search(storage, tiny_data, DEEP, {"vram_budget_gb": FITS_ONLY_CHECKPOINTED / 2**30}, uri)
    result = finalize(FinalizeOptions(storage=storage, search="s", epochs=2), out=io.StringIO())
    final = result.directory
    assert yaml.safe_load((final / "config.yaml").read_text())["model"]["checkpointing"] is True
    assert _config_artifact(uri, result.run_id, tmp_path)["model"]["checkpointing"] is True
    last = TrainingCheckpoint.load(final / LAST_FILE)
    assert (last.epoch, last.total_epochs, last.run_id) == (2, 2, result.run_id)
    assert last.best_epoch == result.best_epoch and last.best_val_ssim == result.best_val_ssim

    # Cut back to epoch 1 in the same format a trial writes, then resume: epoch 2 runs again, on the same run.
    session = TrainingSession(_run(uri, experiment, "partial"), 2, 2**30)
    config = TrialConfig.from_dict(last.config)
    with session:
        session.begin(TrialData(tiny_data, config.train, device=CPU), config, auto_checkpointing=False)
        next(session.epochs())
        partial = session.checkpoint()
    TrainingCheckpoint(partial.trainer_state, result.run_id, 2, partial.best_epoch, partial.best_val_ssim).save(
        final / LAST_FILE)
    (final / "final.json").unlink()
    resumed = finalize(FinalizeOptions(storage=storage, search="s", resume=True), out=io.StringIO())
    assert resumed.run_id == result.run_id
    assert TrainingCheckpoint.load(final / LAST_FILE).epoch == 2
    assert resumed.registered_version == result.registered_version, "one run registers one version"
    assert len(MlflowClient(uri).search_model_versions("name = 'varnet-tuner-s'")) == 1
    with pytest.raises(FinalizeError, match="finished already"):
        finalize(FinalizeOptions(storage=storage, search="s", resume=True), out=io.StringIO())


def test_a_file_that_is_not_a_checkpoint_is_named_in_one_line(tmp_path):
    torch.save({"model": {}}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match=r"weights\.pt: not a training checkpoint \(missing config, epoch"):
        TrainingCheckpoint.load(tmp_path / "weights.pt")
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(CheckpointError, match=r"torn\.pt: not a readable training checkpoint"):
        TrainingCheckpoint.load(tmp_path / "torn.pt")


def test_epochs_logged_before_a_crash_are_not_logged_again_on_resume(tiny_data, tmp_path):
    """Killed after epoch 2's metrics reached MLflow but before its checkpoint: the resume from epoch 1 trains
    epoch 2 again (the same numbers) and the run's history keeps one point per epoch."""
    uri, experiment = _store(tmp_path)
    config = TrialConfig.from_flat(TINY)
    first = TrainingSession(_run(uri, experiment, "killed"), 3, 2**30)
    with first:
        first.begin(TrialData(tiny_data, config.train, device=CPU), config, auto_checkpointing=True)
        epochs = first.epochs()
        next(epochs)
        first.checkpoint().save(tmp_path / "state.pt")
        logged = next(epochs).result.val.overall
    resumed = TrainingSession(Run.reopen(uri, first.run.run_id), 3, 2**30)
    with resumed:
        resumed.restore(TrialData(tiny_data, config.train, device=CPU), TrainingCheckpoint.load(tmp_path / "state.pt"))
        again = [epoch.result.val.overall for epoch in resumed.epochs()]
    assert again[0] == logged
    history = MlflowClient(uri).get_metric_history(first.run.run_id, "val_ssim")
    assert sorted(m.step for m in history) == [1, 2, 3]
