"""`python -m tuner search`: assemble Ray Tune + Optuna TPE + ASHA over a search space and run it.

The driver resolves every path to absolute (trials run elsewhere), opens the MLflow parent run,
starts or joins Ray, runs the Tuner, and leaves behind `<storage>/<name>/search.json`: the record
`finalize` reads (space, data, store, parent run, every trial and the best one).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import ray
from mlflow.exceptions import MlflowException
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from data.errors import first_line
from tuner.config.space import SearchSpace, load_space
from tuner.contract import (
    COMPLETED,
    FAILED,
    FORGOTTEN_TAG,
    INFEASIBLE,
    INFEASIBLE_FLAG,
    INTERRUPTED,
    METRIC,
    MODE,
    NODES_KEY,
    OUTBOX_DIR,
    RECORD_FILE,
    SCORED,
    SPACE_FILE,
    SearchError,
    TrackingError,
)
from tuner.search.cluster import cluster_nodes, connect_ray
from tuner.search.events import RepeatLog, TrialEvents, trial_dirname, trial_name
from tuner.search.placement import AUTO, plan_trials
from tuner.search.progress import ProgressPrinter, board_name
from tuner.search.record import SearchRecord, TrialSummary
from tuner.search.report import ReportUpdater, log_report
from tuner.search.searcher import SearchSpaceSearcher
from tuner.search.storage import SearchStorage
from tuner.search.summary import print_summary
from tuner.search.trainable import TrialContext, run_trial
from tuner.tracking.outbox import is_unreachable, may_answer, patience_s
from tuner.tracking.runs import STATUS_TAG, Run, child_runs, ensure_experiment, flush_outboxes
from tuner.train.progress import progress_interval_s

TRIAL_RETRIES = 2


@dataclass(frozen=True)
class SearchOptions:
    """Where a search runs and logs; all paths already absolute."""

    name: str
    storage: SearchStorage
    data_root: Path
    tracking_uri: str
    address: str | None = None
    resume: bool = False


def run_search(spec: SearchSpace, options: SearchOptions, out: TextIO = sys.stdout) -> SearchRecord:
    """Run (or resume) the search and return its final record."""
    search_dir = options.storage.local / options.name
    record_path = search_dir / RECORD_FILE
    if options.resume:
        if not tune.Tuner.can_restore(options.storage.experiment(options.name)) or not record_path.exists():
            raise SearchError(f"{options.storage.experiment(options.name)}: no interrupted search to resume there")
        record = SearchRecord.load(record_path)
        record.space = str(search_dir / SPACE_FILE)  # a record fetched from remote storage names another machine's
        # Writes a tracking server missed before the interruption go first.
        flush_outboxes(record.tracking_uri, search_dir / OUTBOX_DIR)
        parent = Run.reopen(record.tracking_uri, record.parent_run_id, search_dir / OUTBOX_DIR)
    else:
        record, parent = _start_record(spec, options, search_dir)
    print(f"search {options.name}: results in {search_dir}", file=out)
    print(f"MLflow: {options.tracking_uri} (parent run {record.parent_run_id})", file=out)

    started_ray = connect_ray(options.address)
    status = FAILED
    try:
        tuner = _make_tuner(spec, options, record, out)
        results = tuner.fit()
        try:
            # The trials' outcomes are read from MLflow: what waited for the server must be there first.
            flush_outboxes(record.tracking_uri, search_dir / OUTBOX_DIR, patient=True)
            record = _finish_record(record, results, search_dir / OUTBOX_DIR)
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            # Nothing is lost: the checkpoints and the outbox are on disk, and --resume finishes the search.
            status = INTERRUPTED
            raise TrackingError(
                f"--tracking-uri {record.tracking_uri}: the server stayed unreachable for {patience_s():.0f} s "
                f"when the trials ended; their results wait in {search_dir / OUTBOX_DIR}; once it is back, "
                f"finish the search: python -m tuner search --name {options.name} --resume") from None
        status = record.status
    except KeyboardInterrupt:
        status = INTERRUPTED
        raise
    finally:
        record.status = status
        record.finished = time.time()
        _save_record(record, options, final=True)
        try:
            _log_summary(parent, record)
            parent.finish(status)
            if record.trials and may_answer():  # with the server away, `tuner report` draws them later
                log_report(record, load_space(record.space), search_dir / OUTBOX_DIR)
        except (MlflowException, OSError) as exc:
            # The record on disk is complete; only MLflow's copy of the summary is missing.
            print(f"warning: the search's summary did not reach MLflow ({first_line(exc)}); it is in "
                  f"{record_path}; `python -m tuner report {options.name}` draws its plots", file=sys.stderr)
        finally:
            if started_ray:
                ray.shutdown()
    print_summary(record, out)
    return record


def _start_record(spec: SearchSpace, options: SearchOptions, search_dir: Path) -> tuple[SearchRecord, Run]:
    """Claim the search's folder, open its parent run and write its first record.

    The folder is claimed by creating it (two searches of one name cannot both succeed). Until the
    record is written the claim is undone on any failure, so a search that could not start leaves its
    name free; so does one whose record says it failed without running a single trial.
    """
    experiment = options.storage.experiment(options.name)
    if options.storage.remote is not None and tune.Tuner.can_restore(experiment):
        raise SearchError(f"{experiment} already exists: choose another --name, or pass --resume to continue it")
    if (search_dir / RECORD_FILE).exists():
        earlier = SearchRecord.load(search_dir / RECORD_FILE)
        if earlier.status != FAILED or earlier.trials:
            raise SearchError(f"{search_dir} already exists: choose another --name, or pass --resume to continue it")
        shutil.rmtree(search_dir)  # a search that failed before its first trial: nothing in it to keep
    search_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        search_dir.mkdir()
    except FileExistsError:
        raise SearchError(f"{search_dir} already exists: choose another --name, or pass --resume to continue "
                          f"it") from None
    parent = None
    try:
        shutil.copyfile(spec.source, search_dir / SPACE_FILE)
        experiment_id = ensure_experiment(options.tracking_uri, spec.name, options.storage.remote)
        parent = Run.start(options.tracking_uri, experiment_id, name=options.name,
                           tags={"kind": "search", "search": options.name, "model": spec.model_name},
                           outbox=search_dir / OUTBOX_DIR)
        parent.log_params(_search_params(spec, options))
        parent.log_artifact(search_dir / SPACE_FILE)
        record = SearchRecord(
            name=options.name, space=str(search_dir / SPACE_FILE), space_name=spec.name, model=spec.model_name,
            data_root=str(options.data_root), tracking_uri=options.tracking_uri, experiment_id=experiment_id,
            parent_run_id=parent.run_id, max_epochs=spec.asha.max_epochs, finalize_epochs=spec.finalize_epochs,
            expected_trials=spec.count_configurations(spec.search.num_samples), started=time.time(),
            mask_bank=None if spec.mask_bank is None else str(spec.mask_bank),
        )
        _save_record(record, options)
    except BaseException:
        shutil.rmtree(search_dir, ignore_errors=True)
        if parent is not None:
            with contextlib.suppress(Exception):  # the store may be what failed; its error is the one to see
                parent.finish(FAILED)
        raise
    return record, parent


def _save_record(record: SearchRecord, options: SearchOptions, *, final: bool = False) -> None:
    """Write the record, and copy it and the space next to Ray's experiment when that is remote.

    The final copy only warns when the remote store refuses it: the local record is complete, and
    the error that ended the search is the one to see.
    """
    folder = options.storage.local / options.name
    record.save(folder / RECORD_FILE)
    try:
        options.storage.upload(options.name, [folder / RECORD_FILE, folder / SPACE_FILE])
    except OSError as exc:
        if not final:
            raise
        print(f"warning: the record's copy in {options.storage.experiment(options.name)} was not updated "
              f"({first_line(exc)}); it is in {folder / RECORD_FILE}", file=sys.stderr)


def _make_tuner(spec: SearchSpace, options: SearchOptions, record: SearchRecord, out: TextIO) -> tune.Tuner:
    board = board_name(options.name)
    context = TrialContext(
        search_name=record.name, data_root=record.data_root, tracking_uri=record.tracking_uri,
        experiment_id=record.experiment_id, parent_run_id=record.parent_run_id, max_epochs=spec.asha.max_epochs,
        vram_budget_gb=spec.resources.vram_budget_gb, auto_checkpointing=spec.resources.auto_checkpointing,
        mask_bank=record.mask_bank, outbox=str(options.storage.local / options.name / OUTBOX_DIR),
        progress_board=board, progress_interval_s=progress_interval_s(),
    )
    # Every epoch's checkpoint forces an experiment snapshot (num_to_keep=1), on purpose: a resumed
    # search then restarts a trial from its newest checkpoint. Ray warns about exactly that.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's newer console output advertises TensorBoard; our per-epoch lines and MLflow replace it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    settings = spec.resources
    placement = plan_trials(cluster_nodes(probe_gpus=settings.trials_per_gpu == AUTO), settings.cpus_per_trial,
                            settings.trials_per_gpu, settings.vram_budget_gb)
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), placement.resources)
    search_dir = options.storage.local / options.name
    print(f"trials: {placement.concurrency} at a time ({placement.reason})", file=out)
    if options.resume:
        # Errored trials run again from their last checkpoint: what failed them (a tracking server away
        # for longer than the patience, a lost node) has usually passed by the time a user resumes.
        return tune.Tuner.restore(options.storage.experiment(options.name), trainable, resume_unfinished=True,
                                  resume_errored=True)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=MODE,
            search_alg=SearchSpaceSearcher(spec, RepeatLog(record.tracking_uri, record.parent_run_id,
                                                                    search_dir / OUTBOX_DIR)),
            scheduler=ASHAScheduler(time_attr="epoch", max_t=spec.asha.max_epochs,
                                    grace_period=spec.asha.grace_period,
                                    reduction_factor=spec.asha.reduction_factor),
            num_samples=spec.search.num_samples, max_concurrent_trials=placement.concurrency, reuse_actors=True,
            trial_name_creator=trial_name, trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=options.name, storage_path=options.storage.ray_path, verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            # A trial whose worker or node died runs again from its last checkpoint, on any node.
            failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES),
            callbacks=[TrialEvents(record.tracking_uri, record.experiment_id, record.parent_run_id,
                                   spec.asha.max_epochs, search_dir / OUTBOX_DIR,
                                   ReportUpdater(record, search_dir / OUTBOX_DIR)), ProgressPrinter(board)],
        ),
    )


def _finish_record(record: SearchRecord, results: tune.ResultGrid, outbox: Path) -> SearchRecord:
    """Summarise every trial from the status its MLflow run ended with (see `TrialEvents`).

    A run still RUNNING now belongs to a trial Tune never finished (the search was interrupted): it
    is ended as `interrupted`, and `--resume` trains that trial on.
    """
    runs = {r.data.tags.get("tune.trial_id"): r
            for r in child_runs(record.tracking_uri, record.experiment_id, record.parent_run_id)}
    trials = []
    for result in results:
        name, trial_id = Path(result.path).name.split("_", 1)
        run = runs.get(trial_id)
        if result.error is not None:
            status = FAILED
        elif run is not None and run.info.status != "RUNNING" and STATUS_TAG in run.data.tags:
            status = run.data.tags[STATUS_TAG]
        else:
            status = INTERRUPTED
        if run is not None and run.info.status == "RUNNING":
            Run(record.tracking_uri, run.info.run_id, outbox).finish(status)
        metrics = result.metrics or {}
        if metrics.get(INFEASIBLE_FLAG):
            status = INFEASIBLE
        val_ssim = metrics.get(METRIC)
        if val_ssim is not None and math.isnan(val_ssim):
            val_ssim = None
        trials.append(TrialSummary(name=name, trial_id=trial_id, status=status, epochs=int(metrics.get("epoch", 0)),
                                   val_ssim=val_ssim, config=dict(result.config or {}), nodes=_nodes(result)))
    record.trials = sorted(trials, key=lambda t: t.name)
    _end_forgotten_runs(record, [r for trial_id, r in runs.items() if trial_id not in {t.trial_id for t in trials}],
                        outbox)
    finished = [t for t in record.trials if t.val_ssim is not None and t.status in SCORED]
    if finished:
        # A trial's last reported value, and trials that trained to the end rank above stopped ones.
        record.best = max(finished, key=lambda t: (t.status == COMPLETED, t.val_ssim)).name
    # Ray Tune returns normally after Ctrl-C; a search that stopped short of its trials was interrupted.
    unfinished = any(t.status == INTERRUPTED for t in record.trials)
    record.status = INTERRUPTED if unfinished or len(record.trials) < record.expected_trials else COMPLETED
    return record


def _nodes(result: Any) -> list[str]:
    """The nodes that trained the trial, in order, as its last report says."""
    nodes = (result.metrics or {}).get(NODES_KEY)
    return str(nodes).split(",") if nodes else []


def _end_forgotten_runs(record: SearchRecord, runs: list[Any], outbox: Path) -> None:
    """End and label the runs of trials that Tune itself has no record of.

    A kill can land after a trial opened its MLflow run but before Tune saved its experiment state
    with that trial in it. The resumed search never sees that trial (its number is proposed again, to
    a new trial with a new run); the old run stays, as everything logged does, but ended and named
    for what it is, so no trial appears twice.
    """
    for run in runs:
        forgotten = Run(record.tracking_uri, run.info.run_id, outbox)
        if FORGOTTEN_TAG not in run.data.tags:
            forgotten.set_tags({FORGOTTEN_TAG: "the search was killed before Ray Tune recorded this trial; "
                                               "it is not part of the search",
                                "mlflow.runName": f"{run.info.run_name} (not in the search)"})
        if run.info.status == "RUNNING":
            forgotten.finish(INTERRUPTED)


def _search_params(spec: SearchSpace, options: SearchOptions) -> dict[str, Any]:
    params: dict[str, Any] = {f"fixed.{k}": v for k, v in spec.fixed.items()}
    params.update({f"searched.{p.key}": f"{p.kind} {list(p.corners())}" for p in spec.params})
    params.update({
        "search.num_samples": spec.search.num_samples, "search.seed": spec.search.seed,
        "asha.max_epochs": spec.asha.max_epochs, "asha.grace_period": spec.asha.grace_period,
        "asha.reduction_factor": spec.asha.reduction_factor, "data_root": options.data_root,
        "space": spec.source,
    })
    return params


def _log_summary(parent: Run, record: SearchRecord) -> None:
    counts: dict[str, int] = {}
    for trial in record.trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    metrics = {f"trials_{status.replace(' ', '_')}": n for status, n in counts.items()}
    best = record.best_trial()
    if best is not None and best.val_ssim is not None:
        metrics["best_val_ssim"] = best.val_ssim
        parent.set_tags({"best_trial": best.name})
    if metrics:
        parent.log_metrics(metrics, step=0)
    parent.log_text(json.dumps(record.to_dict(), indent=2, default=str), RECORD_FILE)
