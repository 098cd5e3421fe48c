"""The whole chain on tiny demo data: Ray Tune + TPE + ASHA -> trials -> MLflow -> finalize -> registry."""

import contextlib
import dataclasses
import io
import os
import re

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from data.snu import SNUSliceDataset
from tests.conftest import TINY_SPACE
from tuner.commands.finalize import FinalizeOptions, finalize
from tuner.config.space import load_space
from tuner.contract import NODE_TAG, FinalizeError, SearchError
from tuner.search.driver import SearchOptions, run_search
from tuner.search.storage import SearchStorage
from tuner.tracking.models import fetch_model
from tuner.train.progress import PROGRESS_ENV

PROGRESS_LINE = re.compile(r"^  t\d{3}  epoch \d+/\d+  \d+/\d+ slices  \d+\.\d\d s/slice  loss \d+\.\d{4}  "
                           r"epoch ETA \d+ s$")


@pytest.fixture(scope="module")
def search(tmp_path_factory, tiny_data, ray_instance):
    """One finished tiny search, two trials at a time (one CPU each on the 2-CPU Ray), with progress lines
    every 0.05 s; the tests below read what it left behind (the summary it returned, the driver's console)."""
    work = tmp_path_factory.mktemp("search")
    spec = load_space(TINY_SPACE)
    spec = dataclasses.replace(spec, resources=dataclasses.replace(spec.resources, cpus_per_trial=1))
    options = SearchOptions(name="e2e", storage=SearchStorage(work / "runs"), data_root=tiny_data,
                            tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    out, console = io.StringIO(), io.StringIO()
    os.environ[PROGRESS_ENV] = "0.05"
    try:
        with contextlib.redirect_stdout(console):
            record = run_search(spec, options, out=out)
    finally:
        del os.environ[PROGRESS_ENV]
    return spec, options, record, out.getvalue(), console.getvalue()


def test_search_runs_every_trial_and_asha_stops_some(search):
    """With trials running concurrently: ASHA stops some on what has been reported so far, and TPE (with the
    constant liar) proposes distinct configurations."""
    spec, options, record, printed, _ = search
    assert "trials: 2 at a time (2 CPUs on 1 node, 1 per trial, no GPU)" in printed
    assert len({spec.config_key(t.config) for t in record.trials}) == len(record.trials)
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
    spec, options, record, _, _ = search
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
        assert trial.nodes == [run.data.tags[NODE_TAG]], "the record names the one node that trained the trial"
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
    spec, options, _, _, _ = search
    with pytest.raises(SearchError, match="already exists"):
        run_search(spec, options)


def test_finalize_trains_the_best_config_and_registers_it(search, tiny_data, monkeypatch):
    """...printing progress lines in an epoch longer than the interval, since its output is not a terminal."""
    spec, options, record, _, _ = search
    out = io.StringIO()
    monkeypatch.setenv(PROGRESS_ENV, "0.05")
    result = finalize(FinalizeOptions(storage=options.storage.local, search="e2e", epochs=2), out=out)
    assert any(re.match(r"^  epoch 1/2  \d+/\d+ slices  .* s/slice  loss .*  epoch ETA \d+ s$", line)
               for line in out.getvalue().splitlines()), out.getvalue()
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


def test_trials_print_progress_lines_on_the_driver_console_during_an_epoch(search):
    """An epoch longer than the progress interval shows lines (slices done of total, s/slice, running loss,
    ETA) on the driver's console, from the trial's worker; the run also holds them as metrics."""
    spec, options, record, _, console = search
    lines = [line for line in console.splitlines() if PROGRESS_LINE.match(line)]
    assert lines, console[-3000:]
    assert {line.split()[0] for line in lines} <= {t.name for t in record.trials}
    client = MlflowClient(options.tracking_uri)
    trial = record.trials[0]
    run = client.search_runs([record.experiment_id], filter_string=f"tags.`tune.trial_id` = '{trial.trial_id}'")[0]
    rates = client.get_metric_history(run.info.run_id, "slices_per_second")
    assert rates and all(m.value > 0 for m in rates)
    assert client.get_metric_history(run.info.run_id, "train_loss_running")


def _png_pixels(path):
    import matplotlib.image

    data = open(path, "rb").read()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    return matplotlib.image.imread(path)


def test_each_trial_run_holds_a_four_panel_figure_per_validation_category(search, tiny_data):
    """images/<category>.png: target, reconstruction, zero-filled and error map side by side, one PNG per
    category of the validation set, FIGURE_SIZE x FIGURE_DPI pixels."""
    from tuner.train.figures import FIGURE_DPI, FIGURE_SIZE

    spec, options, record, _, _ = search
    categories = set(SNUSliceDataset(tiny_data, "val").categories)
    client = MlflowClient(options.tracking_uri)
    children = client.search_runs([record.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'")
    for run in children:
        listed = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id, "images")}
        assert set(listed) == {f"images/{c}.png" for c in categories}
        assert all(size > 10_000 for size in listed.values()), listed
    pixels = _png_pixels(client.download_artifacts(children[0].info.run_id, f"images/{sorted(categories)[0]}.png"))
    assert pixels.shape[:2] == (FIGURE_SIZE[1] * FIGURE_DPI, FIGURE_SIZE[0] * FIGURE_DPI)
    # Four panels: four runs of columns that are not plain white background, below the heading.
    painted = (pixels[60:, :, :3] < 0.99).any(axis=(0, 2))
    starts = painted & ~np.concatenate([[False], painted[:-1]])
    assert starts.sum() == 4


def test_the_parent_run_holds_the_search_plots_and_a_summary_table(search):
    from tuner.search.plots import PLOT_FILES

    spec, options, record, _, _ = search
    client = MlflowClient(options.tracking_uri)
    plots = {a.path: a.file_size for a in client.list_artifacts(record.parent_run_id, "plots")}
    assert set(plots) == {f"plots/{name}" for name in PLOT_FILES}
    assert all(size > 10_000 for size in plots.values()), plots
    for name in PLOT_FILES:
        assert _png_pixels(client.download_artifacts(record.parent_run_id, f"plots/{name}")).std() > 0
    summary = open(client.download_artifacts(record.parent_run_id, "summary.md")).read()
    rows = [line for line in summary.splitlines() if re.match(r"^\| \**t\d{3}", line)]
    assert len(rows) == len(record.trials)
    assert record.best in rows[0]  # sorted by SSIM, and the best trial completed with the highest one


def test_report_prints_the_search_and_writes_its_plots_but_never_over_other_files(search, tmp_path):
    from tuner.commands.report import report
    from tuner.search.plots import PLOT_FILES

    spec, options, record, _, _ = search
    out = io.StringIO()
    paths = report(options.storage.local, None, tmp_path / "r", out)  # no name: the latest search
    assert sorted(p.name for p in paths) == sorted([*PLOT_FILES, "summary.md"])
    assert all(p.parent == tmp_path / "r" and p.stat().st_size > 0 for p in paths)
    assert f"best trial: {record.best}" in out.getvalue()
    again = report(options.storage.local, "e2e", tmp_path / "r", io.StringIO())  # its own earlier report
    assert [p.name for p in again] == [p.name for p in paths]

    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep")
    with pytest.raises(SearchError, match="expected a new or empty folder"):
        report(options.storage.local, "e2e", theirs, io.StringIO())
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
