"""Trials per hour of a whole search, one trial at a time against two at once, and the search's own overhead.

    python benchmarks/search_throughput.py                      # the varnet demo space, 4 trials of 2 epochs
    python benchmarks/search_throughput.py --trials 6 --slices 16

Runs `python -m tuner search` on the demo data twice, side by side in one invocation: with
`resources.cpus_per_trial` equal to the machine's CPUs (one trial at a time) and with half of them
(two at once). ASHA is set never to stop a trial early (grace period = epochs), so both runs train
the same amount. Per run:

- wall: from starting the command to its exit (Python, Ray, MLflow and the driver included);
- trial time: the sum of the trials' MLflow runs, each from its start (before data and the memory
  probe) to its end: the work a trial does itself;
- overhead: 1 - trial time / (wall x trials at once), the share of the slots' time that went to
  anything but a trial: starting Ray and workers, scheduling, Tune's bookkeeping, the driver's
  MLflow writes, and slots left idle. Split into startup (command start to the first trial's run),
  teardown (the last trial's end to the command's exit; both fixed per search, whatever its
  length) and the overhead between the first trial's start and the last one's end (per trial).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from tuner.commands.demo_data import demo_spec, ensure_demo_data
from tuner.config.space import load_space
from tuner.search.record import SearchRecord

ROOT = Path(__file__).resolve().parents[1]


def run_search(space: Path, work: Path, name: str, trials: int) -> dict[str, float]:
    """Wall seconds of one search, and where they went, from its trials' MLflow runs."""
    store = f"sqlite:///{work / 'mlflow.db'}"
    started = time.time()
    subprocess.run([sys.executable, "-m", "tuner", "search", str(space), "--name", name, "--storage",
                    str(work / "runs"), "--tracking-uri", store, "--num-samples", str(trials)],
                   cwd=work, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    ended = time.time()
    record = SearchRecord.load(work / "runs" / name / "search.json")
    runs = MlflowClient(store).search_runs(
        [record.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'")
    first, last = min(run.info.start_time for run in runs) / 1000, max(run.info.end_time for run in runs) / 1000
    return {"trials": len(record.trials), "wall": ended - started, "startup": first - started,
            "teardown": ended - last, "span": last - first,
            "trial_s": sum((run.info.end_time - run.info.start_time) / 1000 for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "varnet.yaml")
    parser.add_argument("--trials", type=int, default=4, help="trials per search (even: both runs fill their slots)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--slices", type=int, default=None, help="train.train_slices_per_epoch (trial length)")
    args = parser.parse_args()
    cpus = os.cpu_count() or 2
    raw = yaml.safe_load(args.space.read_text())
    raw["asha"] = {"max_epochs": args.epochs, "grace_period": args.epochs, "reduction_factor": 2}
    if args.slices is not None:
        raw.setdefault("train", {})["train_slices_per_epoch"] = args.slices
    ensure_demo_data(demo_spec(load_space(args.space).demo))  # generated once, outside the timings
    rows = []
    with tempfile.TemporaryDirectory(prefix="search-throughput-") as tmp:
        work = Path(tmp)
        for at_once in (1, 2):
            raw["resources"] = {**raw.get("resources", {}), "cpus_per_trial": max(1, cpus // at_once)}
            space = work / f"space{at_once}.yaml"
            space.write_text(yaml.safe_dump(raw, sort_keys=False))
            rows.append((at_once, cpus // at_once, run_search(space, work, f"at-once-{at_once}", args.trials)))
            print(f"measured: {at_once} at a time", flush=True)
    print(f"\n{args.space.name} on the demo data, {args.trials} trials x {args.epochs} epochs, {cpus} CPUs\n")
    print("| trials at once | CPUs per trial | trials | wall s | trials/hour | mean trial s | overhead | "
          "startup s | teardown s | overhead between first start and last end |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for at_once, per_trial, m in rows:
        overhead = 1 - m["trial_s"] / (m["wall"] * at_once)
        between = 1 - m["trial_s"] / (m["span"] * at_once)
        print(f"| {at_once} | {per_trial} | {m['trials']} | {m['wall']:.0f} | {3600 * m['trials'] / m['wall']:.1f} | "
              f"{m['trial_s'] / m['trials']:.0f} | {100 * overhead:.1f} % | {m['startup']:.1f} | {m['teardown']:.1f} | "
              f"{100 * between:.1f} % |")
    (_, _, one), (_, _, two) = rows
    ratio = (two["trials"] / two["wall"]) / (one["trials"] / one["wall"])
    print(f"\ntrials/hour, 2 at once / 1 at a time: {ratio:.2f}x")


if __name__ == "__main__":
    main()
