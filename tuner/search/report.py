"""A search's report: its trials read back from MLflow, drawn (`tuner.search.plots`) and summarised.

The same files are logged to the search's parent MLflow run after every trial and at the end
(`plots/*.png`, `summary.md`), and written to a folder by `python -m tuner report`. The curves come
from the trial runs themselves (every epoch's `val_ssim`), so a report can be drawn while the search
still runs, after it, or on another machine that reaches the store.
"""

from __future__ import annotations

import math
import tempfile
import threading
from pathlib import Path
from typing import Any

import optuna
import yaml
from mlflow.tracking import MlflowClient

from tuner.config.space import SearchSpace, load_space
from tuner.contract import COMPLETED, FORGOTTEN_TAG, METRIC, RUNNING
from tuner.search.plots import TrialCurve, summary_markdown, write_search_plots
from tuner.search.record import SearchRecord
from tuner.tracking.outbox import may_answer, patiently
from tuner.tracking.runs import STATUS_TAG, Run, child_runs

PLOTS_DIR = "plots"  # in the parent run's artifacts
SUMMARY_FILE = "summary.md"
MIN_TRIALS_FOR_IMPORTANCE = 2


def trial_curves(record: SearchRecord, spec: SearchSpace) -> list[TrialCurve]:
    """Every trial of the search in the order they started, with the space's sampled parameters."""
    client = MlflowClient(record.tracking_uri)
    keys = [param.key for param in spec.params]
    runs = [run for run in child_runs(record.tracking_uri, record.experiment_id, record.parent_run_id)
            if FORGOTTEN_TAG not in run.data.tags]
    curves = []
    for run in sorted(runs, key=lambda r: r.info.start_time):
        history = patiently(lambda run=run: client.get_metric_history(run.info.run_id, METRIC))
        by_epoch = {int(m.step): float(m.value) for m in history}
        status = RUNNING if run.info.status == "RUNNING" else run.data.tags.get(STATUS_TAG, run.info.status.lower())
        config = {key: yaml.safe_load(run.data.params[key]) for key in keys if key in run.data.params}
        curves.append(TrialCurve(name=(run.info.run_name or run.info.run_id).split()[0], status=status,
                                 config=config, val_ssim=sorted(by_epoch.items())))
    return curves


def param_importances(curves: list[TrialCurve], spec: SearchSpace) -> dict[str, float] | None:
    """Optuna's fANOVA importance of each sampled parameter for the final SSIM of the trials that completed.

    Trials stopped early are left out: their last SSIM is an early one, lower for reasons that are not
    the parameters. None when fewer than MIN_TRIALS_FOR_IMPORTANCE completed or nothing varies.
    """
    finished = [c for c in curves if c.status == COMPLETED and c.final_ssim is not None]
    if len(finished) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for curve in finished:
        # Replaying the space with the trial's values fixed gives Optuna each parameter's distribution.
        study.enqueue_trial(curve.config)
        trial = study.ask()
        spec.sample(trial)
        study.tell(trial, curve.final_ssim)
    try:
        importances = optuna.importance.get_param_importances(study, evaluator=optuna.importance.
                                                              FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError):
        return None  # e.g. every parameter was the same in the completed trials
    return {name: float(value) for name, value in importances.items() if math.isfinite(value)} or None


def write_report(record: SearchRecord, spec: SearchSpace, folder: Path) -> list[Path]:
    """The plots and `summary.md` of the search into `folder`; returns the files written."""
    curves = trial_curves(record, spec)
    title = record.name
    paths = write_search_plots(curves, param_importances(curves, spec), folder, title)
    summary = folder / SUMMARY_FILE
    summary.write_text(summary_markdown(curves, title, record.best))
    return [*paths, summary]


# One drawing at a time per process, so a late background drawing never lands after the final one.
_DRAWING = threading.Lock()


def log_report(record: SearchRecord, spec: SearchSpace, outbox: Path | None = None) -> None:
    """Draw the report and log it to the search's parent run, replacing the previous one."""
    parent = Run(record.tracking_uri, record.parent_run_id, outbox)
    with _DRAWING, tempfile.TemporaryDirectory() as tmp:
        for path in write_report(record, spec, Path(tmp)):
            if path.suffix == ".png":
                parent.log_png(path.read_bytes(), f"{PLOTS_DIR}/{path.name}")
            else:
                parent.log_text(path.read_text(), path.name)


class ReportUpdater:
    """Redraws the parent run's report after every trial, in a background thread so Tune's loop never waits.

    Trials that end while a report is drawn are covered by one more drawing after it. Once closed (the
    experiment ended; the driver draws the final report) it draws nothing more. It skips drawing while
    the tracking server is known to be away. Only plain values are kept, so Tune can pickle it with the
    experiment's callbacks.
    """

    def __init__(self, record: SearchRecord, outbox: Path | None) -> None:
        self.record_dict = record.to_dict()
        self.outbox = outbox
        self._thread: threading.Thread | None = None
        self._again = False
        self._closed = False

    def __getstate__(self) -> dict[str, Any]:
        return {"record_dict": self.record_dict, "outbox": self.outbox, "_thread": None, "_again": False,
                "_closed": False}

    def trial_ended(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._again = True
            return
        self._thread = threading.Thread(target=self._draw, name="search-report", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed = True

    def _draw(self) -> None:
        record = SearchRecord(**{**self.record_dict, "trials": []})
        while not self._closed and may_answer():
            self._again = False
            try:
                log_report(record, load_space(record.space), self.outbox)
            except Exception as exc:  # a picture must never stop a search; the final report is drawn again
                print(f"  warning: the search's plots were not updated ({type(exc).__name__}: {exc})", flush=True)
            if not self._again:
                return
