"""What the driver hears from Ray Tune and the searcher while a search runs: one console line per trial
epoch and end, each trial's MLflow run ended as Tune decided (and the parent run's report redrawn),
and TPE's repeated proposals recorded."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from ray import tune

from data.errors import first_line
from tuner.contract import COMPLETED, FAILED, INFEASIBLE, INFEASIBLE_FLAG, METRIC, STOPPED_EARLY
from tuner.search.report import ReportUpdater
from tuner.search.searcher import Duplicate, trial_label
from tuner.tracking.runs import Run, child_runs


def trial_name(trial: Any) -> str:
    return trial_label(int(trial.experiment_tag.split("_")[0]))


def trial_dirname(trial: Any) -> str:
    return f"{trial_name(trial)}_{trial.trial_id}"


@dataclass(frozen=True)
class RepeatLog:
    """Says on the console and in the parent MLflow run (repeats.json) when TPE proposed a configuration again."""

    tracking_uri: str
    parent_run_id: str
    outbox: Path | None = None

    def __call__(self, repeat: Duplicate, repeats: list[Duplicate]) -> None:
        how = "reused its result" if repeat.outcome == "reused" else "it is still training"
        print(f"  TPE proposed {repeat.repeats_trial}'s configuration again ({how}); sampling anew", flush=True)
        parent = Run(self.tracking_uri, self.parent_run_id, self.outbox)
        parent.log_text(json.dumps([asdict(d) for d in repeats], indent=2), "repeats.json")
        parent.set_tags({"repeats_skipped": len(repeats)})


class TrialEvents(tune.Callback):
    """Prints one line per trial epoch and end, and ends each trial's MLflow run as Tune decided.

    The trainable ends its own run, but Ray may stop a trial's process before its `finally` has run
    (always so when the process dies), so the driver, which knows the outcome, ends it too.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, max_epochs: int,
                 outbox: Path | None = None, report: ReportUpdater | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.outbox = outbox
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.max_epochs = max_epochs
        self.report = report

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get(INFEASIBLE_FLAG):
            return  # said once, when the trial completes
        print(f"  {trial_name(trial)}  epoch {result['epoch']}/{self.max_epochs}  val SSIM {result[METRIC]:.4f}"
              f"  loss {result['train_loss']:.4f}  {result['epoch_seconds']:.1f} s", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        epoch = result.get("epoch", 0)
        if result.get(INFEASIBLE_FLAG):
            status = INFEASIBLE
            print(f"  {trial_name(trial)}  infeasible: {result.get('infeasible_reason', 'out of memory')}", flush=True)
        else:
            status = COMPLETED if epoch >= self.max_epochs else STOPPED_EARLY
            how = status if epoch >= self.max_epochs else f"stopped early by ASHA after epoch {epoch}"
            print(f"  {trial_name(trial)}  {how}  val SSIM {result.get(METRIC, float('nan')):.4f}", flush=True)
        self._end_runs(trial.trial_id, status)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"  {trial_name(trial)}  failed: see {trial.path}/error.txt", flush=True)
        self._end_runs(trial.trial_id, FAILED)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.report is not None:
            self.report.close()  # the driver draws the final report next

    def _end_runs(self, trial_id: str, status: str) -> None:
        try:
            for run in child_runs(self.tracking_uri, self.experiment_id, self.parent_run_id, trial_id):
                if run.info.status == "RUNNING":
                    Run(self.tracking_uri, run.info.run_id, self.outbox).finish(status)
        except (MlflowException, OSError) as exc:
            # A tracking server that is away must not stop the search; the record on disk has the outcome.
            print(f"  warning: could not end the MLflow run of trial {trial_id} ({first_line(exc)})", flush=True)
        if self.report is not None:
            self.report.trial_ended()
