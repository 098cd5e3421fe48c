"""Did the search pay off? The default search + finalize against the hand-picked warm start, same epoch budget.

    python benchmarks/search_value.py                               # the default space, finalize 5 epochs
    python benchmarks/search_value.py --space search_spaces/varnet.yaml --finalize-epochs 3

On the space's demo data, in a fresh folder and MLflow store:

1. `python -m tuner search SPACE`, as a user runs it; the epochs every trial trained are added up;
2. `python -m tuner finalize --epochs F`: the best configuration trained from scratch for F epochs;
3. the space's first warm-start point (the configuration a person would pick by hand) trained from
   scratch for all the search's trial epochs plus F: the same number of training epochs as 1 and 2
   together, spent on one configuration; its best-validation weights are kept, as finalize does;
4. both models reconstruct the held-out leaderboard split (`python -m tuner reconstruct`), scored by
   `python -m tuner evaluate`, next to the zero-filled inputs scored the same way.

Printed: one row per contender (overall, x4 and x8 leaderboard SSIM, validation SSIM, epochs,
wall time). Validation SSIM is what each was selected on; the leaderboard split was never seen.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import torch

from data.layout import find_submission_files
from tuner.commands.demo_data import demo_spec, ensure_demo_data
from tuner.commands.reconstruct import RECON_KEY
from tuner.config.space import load_space
from tuner.search.record import SearchRecord
from tuner.tracking.runs import Run, ensure_experiment
from tuner.train import devices
from tuner.train.checkpoint import save_atomically
from tuner.train.loaders import TrialData
from tuner.train.memory import GIB
from tuner.train.progress import console_progress
from tuner.train.session import TrainingSession

ROOT = Path(__file__).resolve().parents[1]


def tuner(*args: str, cwd: Path) -> tuple[str, float]:
    """Run `python -m tuner ARGS` in `cwd`; its stdout and wall seconds (exits on failure)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tuner", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tuner {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout, time.perf_counter() - start


def scores(recon: Path, data: Path, work: Path) -> dict:
    out = work / f"{recon.name}.json"
    tuner("evaluate", "--recon", str(recon), "--data", str(data), "--json", str(out), cwd=work)
    return json.loads(out.read_text())


def train_warm_start(space: Path, data: Path, epochs: int, uri: str, out: Path) -> tuple[float, float]:
    """Train the space's first warm-start point for `epochs`; keep its best-validation weights in `out`
    (the checkpoint format `reconstruct --model` reads). Returns (best val SSIM, seconds)."""
    spec = load_space(space)
    config = spec.trial_config(spec.search.points_to_evaluate[0])
    run = Run.start(uri, ensure_experiment(uri, "search-value"), name=f"warm start x{epochs} {config.short_name()}")
    session = TrainingSession(run, epochs, int(spec.resources.vram_budget_gb * GIB), console_progress(sys.stdout))
    start = time.perf_counter()
    with session:
        session.begin(TrialData(data, config.train, config.augment, spec.mask_bank, devices.resolve_device()),
                      config, spec.resources.auto_checkpointing)
        for epoch in session.epochs():
            print(f"  warm start epoch {epoch.result.epoch}/{epochs}  val SSIM {epoch.result.val.overall:.4f}",
                  flush=True)
            if epoch.improved:
                save_atomically({"epoch": epoch.result.epoch, "model": session.trainer.model.state_dict(),
                                 "config": session.config.as_dict(), "val_ssim": epoch.result.val.overall}, out)
    return session.best_val_ssim, time.perf_counter() - start


def zero_filled(data: Path, out: Path) -> Path:
    """The leaderboard inputs' zero-filled images written as a submission folder."""
    for target in find_submission_files(data, "image"):
        path = out / target.submission
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(target.path, "r") as source, h5py.File(path, "w") as dest:
            dest[RECON_KEY] = source["image_input"][()].astype("float32")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "fivarnet.yaml")
    parser.add_argument("--finalize-epochs", type=int, default=5)
    parser.add_argument("--work", type=Path, help="keep the runs, store and reconstructions in this new folder "
                                                  "(default: a temporary one)")
    args = parser.parse_args()
    space = args.space.resolve()
    spec = load_space(space)
    if not spec.search.points_to_evaluate:
        raise SystemExit(f"{space}: no search.points_to_evaluate, so no hand-picked configuration to compare with")
    data = ensure_demo_data(demo_spec(spec.demo))[0]
    leaderboard = data / "leaderboard"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.work is None else args.work.resolve()
        work.mkdir(parents=True, exist_ok=args.work is None)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        storage = ["--storage", str(work / "runs")]
        print(f"search {space.name} on {data} (torch threads {torch.get_num_threads()})", flush=True)
        _, search_s = tuner("search", str(space), "--name", "value", "--tracking-uri", uri, *storage, cwd=work)
        record = SearchRecord.load(work / "runs" / "value" / "search.json")
        trial_epochs = sum(t.epochs for t in record.trials)
        best = record.best_trial()
        print(f"  {len(record.trials)} trials, {trial_epochs} epochs, best {best.name} val SSIM {best.val_ssim:.4f},"
              f" {search_s:.0f} s", flush=True)
        _, final_s = tuner("finalize", "--search", "value", "--epochs", str(args.finalize_epochs), *storage, cwd=work)
        final = json.loads((work / "runs" / "value" / "final" / "final.json").read_text())
        tuner("reconstruct", "--model", "value", "--data", str(leaderboard), "--out", str(work / "searched"),
              *storage, cwd=work)
        budget = trial_epochs + args.finalize_epochs
        print(f"warm start for {budget} epochs", flush=True)
        warm_val, warm_s = train_warm_start(space, data, budget, uri, work / "warm.pt")
        tuner("reconstruct", "--model", str(work / "warm.pt"), "--data", str(leaderboard), "--out",
              str(work / "warm"), cwd=work)
        rows = [
            ("zero-filled input", scores(zero_filled(leaderboard, work / "zero_filled"), leaderboard, work), None, "-",
             0.0),
            (f"search ({len(record.trials)} trials) + finalize {args.finalize_epochs} epochs",
             scores(work / "searched", leaderboard, work), final["best_val_ssim"], f"{trial_epochs} + "
             f"{args.finalize_epochs}", search_s + final_s),
            (f"warm start, {budget} epochs", scores(work / "warm", leaderboard, work), warm_val, str(budget), warm_s),
        ]
    print(f"\n{'contender':<44}{'leaderboard':>12}{'x4':>8}{'x8':>8}{'val SSIM':>10}{'epochs':>10}{'wall s':>8}")
    for name, result, val, epochs, seconds in rows:
        val_text = "-" if val is None else f"{val:.4f}"
        print(f"{name:<44}{result['overall']:>12.4f}{result['per_acceleration']['x4']:>8.4f}"
              f"{result['per_acceleration']['x8']:>8.4f}{val_text:>10}{epochs:>10}{seconds:>8.0f}")


if __name__ == "__main__":
    main()
