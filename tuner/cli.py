"""Command line: `python -m tuner {search,finalize,memory,reconstruct,evaluate,masks,demo-data} ...`.

Argument parsing and dispatch only: each command lives in `tuner.commands.<name>` and is imported
when it runs, so `--help` and the commands that need no Ray or MLflow (a GPU box may have neither)
never load them. Every user error (a `UserError`: bad YAML, bad data, a name already taken, an
unusable tracking URI) ends in one line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Sequence

from tuner.contract import UserError


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    module, function = args.command.split(":")
    try:
        return getattr(importlib.import_module(module), function)(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; `--resume` continues where it stopped", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tuner", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    search = commands.add_parser("search", help="run a hyperparameter search over a YAML search space")
    search.add_argument("space", type=Path, nargs="?",
                        help="search-space YAML, e.g. search_spaces/fivarnet.yaml (left out with --resume)")
    search.add_argument("--data", type=Path,
                        help="SNU-layout data root (default: the YAML's data.root, else demo data)")
    search.add_argument("--name", help="search name (default: <space name>-<date>-<time>)")
    search.add_argument("--num-samples", type=int, help="number of trials (overrides search.num_samples)")
    search.add_argument("--max-epochs", type=int, help="epochs per trial (overrides asha.max_epochs)")
    search.add_argument("--seed", type=int, help="TPE seed (overrides search.seed)")
    search.add_argument("--storage", default="tuner_runs",
                        help="results folder (default ./tuner_runs), or a URI every Ray node reaches for the "
                             "trials' checkpoints (s3://bucket/prefix; the record also stays in ./tuner_runs)")
    search.add_argument("--tracking-uri", help="MLflow store or server (default $MLFLOW_TRACKING_URI, "
                                                "else sqlite:///<cwd>/mlflow.db)")
    search.add_argument("--address", help="Ray cluster address (default $RAY_ADDRESS, else a local Ray)")
    search.add_argument("--resume", action="store_true",
                        help="continue the interrupted search --name, with the space and settings it started with")
    search.set_defaults(command="tuner.commands.search:main")

    final = commands.add_parser("finalize", help="train the best configuration of a search to the end and register it")
    final.add_argument("--search", help="search name (default: the latest finished search in --storage)")
    final.add_argument("--epochs", type=int, help="epochs (default: the YAML's finalize.epochs, 50 unless set)")
    final.add_argument("--storage", type=Path, default=Path("tuner_runs"), help="results folder (default ./tuner_runs)")
    final.add_argument("--registered-name", help="MLflow registered model name (default varnet-tuner-<space name>)")
    final.add_argument("--resume", action="store_true", help="continue an interrupted finalize")
    final.set_defaults(command="tuner.commands.finalize:main")

    rep = commands.add_parser("report", help="a search's trial table and best configuration, and its plots "
                                             "(optimisation history, learning curves, importances) in a folder")
    rep.add_argument("name", nargs="?", help="search name (default: the latest search in --storage)")
    rep.add_argument("--out", type=Path, help="folder for the plots and summary.md (default <storage>/NAME/report)")
    rep.add_argument("--storage", type=Path, default=Path("tuner_runs"), help="results folder (default ./tuner_runs)")
    rep.set_defaults(command="tuner.commands.report:main")

    memory = commands.add_parser("memory", help="measure one training step's parameters, peak memory and time "
                                                "for a space's corner configurations and given configs")
    memory.add_argument("space", type=Path, nargs="?", help="search-space YAML (optional with --config)")
    memory.add_argument("--shape", help="coils,height,width of a synthetic k-space slice, e.g. 16,768,396 "
                                        "(default: the largest training slice of --data, else of the demo data)")
    memory.add_argument("--data", type=Path, help="data root whose largest training slice is measured")
    memory.add_argument("--config", type=Path, action="append", default=[],
                        help="also measure this trial config YAML ({model: ..., train: ...}); repeatable")
    memory.add_argument("--budget", type=float, help="memory budget in GB (default: the space's "
                                                     "resources.vram_budget_gb, else 8)")
    memory.set_defaults(command="tuner.commands.memory:main")

    recon = commands.add_parser("reconstruct", help="reconstruct a folder of k-space files with a trained model "
                                                    "(the leaderboard layout gives a submission folder)")
    recon.add_argument("--model", required=True,
                       help="checkpoint (best.pt, last.pt, state.pt), finalize or search folder, search name, "
                            "or MLflow URI models:/NAME/VERSION or runs:/RUN_ID/model")
    recon.add_argument("--data", type=Path, required=True,
                       help="k-space folder: leaderboard layout acc{4,8}/kspace/ (or a root holding leaderboard/), "
                            "kspace/*.h5 or *.h5")
    recon.add_argument("--out", type=Path, required=True, help="new (or empty) output folder")
    recon.add_argument("--batch-size", type=int, default=1, help="slices per forward pass (default 1)")
    recon.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda where available, else cpu")
    recon.add_argument("--storage", type=Path, default=Path("tuner_runs"),
                       help="where search names are looked up (default ./tuner_runs)")
    recon.add_argument("--tracking-uri", help="MLflow store for models:/ and runs:/ URIs (default "
                                              "$MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    recon.set_defaults(command="tuner.commands.reconstruct:main")

    score = commands.add_parser("evaluate", help="score reconstructions with the leaderboard SSIM")
    score.add_argument("--recon", type=Path, required=True, help="folder of reconstructions (reconstruct's --out)")
    score.add_argument("--data", type=Path, required=True,
                       help="targets: leaderboard layout acc{4,8}/image/ (or a root holding leaderboard/), "
                            "image/*.h5 or *.h5")
    score.add_argument("--split", help="score the targets of DATA/SPLIT, e.g. val of a train/val root")
    score.add_argument("--json", type=Path, help="also write the scores to this new JSON file")
    score.set_defaults(command="tuner.commands.evaluate:main")

    masks = commands.add_parser("masks", help="mask banks for mask duplication (augment.duplication)")
    masks_commands = masks.add_subparsers(required=True, metavar="ACTION")
    build = masks_commands.add_parser("build", help="collect the training files' masks by organ, acceleration "
                                                    "and width into a bank file (.npz)")
    build.add_argument("data", type=Path, help="SNU-layout data root")
    build.add_argument("--out", type=Path, required=True, help="bank file to write (never over an existing one)")
    build.add_argument("--split", default="train", help="which split's masks (default train)")
    build.set_defaults(command="tuner.commands.masks:build")

    demo = commands.add_parser("demo-data", help="write the simulated demo dataset in the SNU challenge layout")
    demo.add_argument("--out", type=Path, required=True, help="new directory to write")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(command="tuner.commands.demo_data:main")
    return parser
