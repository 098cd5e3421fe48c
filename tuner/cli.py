"""Command line: `python -m tuner {search,finalize,memory,reconstruct,evaluate,demo-data} ...`.

Every user error (bad YAML, bad data, a name already taken, an unusable tracking URI) ends in one
line on stderr and exit code 2, before Ray or MLflow have written anything.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from data import DataFormatError
from tuner.commands.evaluate import EvaluateError, evaluate, report, write_scores
from tuner.commands.model_source import ModelLoadError
from tuner.commands.reconstruct import ReconstructError, ReconstructOptions, run_reconstruct
from tuner.config.space import SearchSpec, SpecError, load_spec
from tuner.config.trial import ConfigError
from tuner.contract import INTERRUPTED, FinalizeError, SearchError, TrackingError
from tuner.search.record import SearchRecord
from tuner.train.devices import DeviceError

USER_ERRORS: tuple[type[Exception], ...] = (SpecError, ConfigError, DataFormatError, TrackingError, ModelLoadError,
                                            ReconstructError, EvaluateError, DeviceError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except (*USER_ERRORS, SearchError, FinalizeError) as exc:
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
    search.add_argument("--data", type=Path, help="SNU-layout data root (default: the YAML's data.root, else demo data)")
    search.add_argument("--name", help="search name (default: <space name>-<date>-<time>)")
    search.add_argument("--num-samples", type=int, help="number of trials (overrides search.num_samples)")
    search.add_argument("--max-epochs", type=int, help="epochs per trial (overrides asha.max_epochs)")
    search.add_argument("--seed", type=int, help="TPE seed (overrides search.seed)")
    search.add_argument("--storage", type=Path, default=Path("tuner_runs"), help="results folder (default ./tuner_runs)")
    search.add_argument("--tracking-uri", help="MLflow store or server (default $MLFLOW_TRACKING_URI, "
                                                "else sqlite:///<cwd>/mlflow.db)")
    search.add_argument("--address", help="Ray cluster address (default $RAY_ADDRESS, else a local Ray)")
    search.add_argument("--resume", action="store_true",
                        help="continue the interrupted search --name, with the space and settings it started with")
    search.set_defaults(command=_search)

    final = commands.add_parser("finalize", help="train the best configuration of a search to the end and register it")
    final.add_argument("--search", help="search name (default: the latest finished search in --storage)")
    final.add_argument("--epochs", type=int, help="epochs (default: the YAML's finalize.epochs, 50 unless set)")
    final.add_argument("--storage", type=Path, default=Path("tuner_runs"), help="results folder (default ./tuner_runs)")
    final.add_argument("--registered-name", help="MLflow registered model name (default varnet-tuner-<space name>)")
    final.add_argument("--resume", action="store_true", help="continue an interrupted finalize")
    final.set_defaults(command=_finalize)

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
    memory.set_defaults(command=_memory)

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
    recon.set_defaults(command=_reconstruct)

    score = commands.add_parser("evaluate", help="score reconstructions with the leaderboard SSIM")
    score.add_argument("--recon", type=Path, required=True, help="folder of reconstructions (reconstruct's --out)")
    score.add_argument("--data", type=Path, required=True,
                       help="targets: leaderboard layout acc{4,8}/image/ (or a root holding leaderboard/), "
                            "image/*.h5 or *.h5")
    score.add_argument("--split", help="score the targets of DATA/SPLIT, e.g. val of a train/val root")
    score.add_argument("--json", type=Path, help="also write the scores to this new JSON file")
    score.set_defaults(command=_evaluate)

    masks = commands.add_parser("masks", help="mask banks for mask duplication (augment.duplication)")
    masks_commands = masks.add_subparsers(required=True, metavar="ACTION")
    build = masks_commands.add_parser("build", help="collect the training files' masks by organ, acceleration "
                                                    "and width into a bank file (.npz)")
    build.add_argument("data", type=Path, help="SNU-layout data root")
    build.add_argument("--out", type=Path, required=True, help="bank file to write (never over an existing one)")
    build.add_argument("--split", default="train", help="which split's masks (default train)")
    build.set_defaults(command=_masks_build)

    demo = commands.add_parser("demo-data", help="write the simulated demo dataset in the SNU challenge layout")
    demo.add_argument("--out", type=Path, required=True, help="new directory to write")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(command=_demo_data)
    return parser


def _search(args: argparse.Namespace) -> int:
    storage = args.storage.resolve()
    if args.resume:
        spec, data_root, tracking_uri = _resumed_search(args, storage)
    else:
        if args.space is None:
            raise SearchError("search: name a search-space YAML, e.g. search_spaces/fivarnet.yaml")
        from tuner.tracking.runs import resolve_tracking_uri

        spec = load_spec(args.space).replace(
            num_samples=args.num_samples, seed=args.seed, max_epochs=args.max_epochs, data_root=args.data)
        tracking_uri = resolve_tracking_uri(args.tracking_uri)
        data_root = spec.data_root
    # Ray is imported only once the space and the store are known to be good.
    from tuner.commands.demo_data import check_data_root, demo_spec, ensure_demo_data
    from tuner.search.driver import SearchOptions, run_search

    if data_root is None:
        try:
            data_root, seconds = ensure_demo_data(demo_spec(spec.demo))
        except ValueError as exc:
            raise SpecError(f"{args.space}: {exc}") from None
        how = "cached" if seconds is None else f"generated in {seconds:.1f} s"
        print(f"demo data ({how}): {data_root}")
    train_slices, val_slices = check_data_root(data_root)
    from data.layout import open_split
    from tuner.train.loaders import require_one_shape

    require_one_shape(open_split(data_root, "train").files, spec.largest_value("train.batch_size", 1))
    if spec.mask_bank is not None:
        from data.augment import MaskBank

        MaskBank.load(spec.mask_bank)
    print(f"data: {data_root} ({train_slices} training slices, {val_slices} validation slices)")
    name = args.name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    options = SearchOptions(name=name, storage=storage, data_root=data_root.resolve(), tracking_uri=tracking_uri,
                            address=args.address or os.environ.get("RAY_ADDRESS"), resume=args.resume)
    record = run_search(spec, options)
    if record.status == INTERRUPTED:
        return 130
    return 0 if record.best is not None else 1


def _resumed_search(args: argparse.Namespace, storage: Path) -> tuple[SearchSpec, Path, str]:
    """The space, data and store a search was started with; a resumed search keeps all of them."""
    if not args.name:
        raise SearchError("--resume: name the search to continue with --name")
    given = {"SPACE": args.space, "--data": args.data, "--num-samples": args.num_samples,
             "--max-epochs": args.max_epochs, "--seed": args.seed, "--tracking-uri": args.tracking_uri}
    for flag, value in given.items():
        if value is not None:
            raise SearchError(f"{flag}: a resumed search keeps the settings it started with; leave it out")
    record_path = storage / args.name / "search.json"
    if not record_path.exists():
        raise SearchError(f"{record_path.parent}: no search to resume there")
    record = SearchRecord.load(record_path)
    return load_spec(record.space), Path(record.data_root), record.tracking_uri


def _finalize(args: argparse.Namespace) -> int:
    from tuner.commands.finalize import FinalizeOptions, finalize

    if args.epochs is not None and args.epochs < 1:
        raise SpecError(f"--epochs: expected a positive integer, got {args.epochs}")
    finalize(FinalizeOptions(storage=args.storage.resolve(), search=args.search, epochs=args.epochs,
                             resume=args.resume, registered_name=args.registered_name))
    return 0


def _memory(args: argparse.Namespace) -> int:
    if args.space is None and not args.config:
        raise SpecError("memory: name a search-space YAML, or give --config")
    if args.budget is not None and args.budget <= 0:
        raise SpecError(f"--budget: expected a positive number of GB, got {args.budget}")
    shape = _parse_shape(args.shape) if args.shape is not None else None
    spec = load_spec(args.space) if args.space is not None else None
    from tuner.commands.memory import SliceSource, corner_configs, load_config_file, memory_report

    configs = (corner_configs(spec) if spec else []) + [load_config_file(path) for path in args.config]
    root = args.data or (spec.data_root if spec else None)
    if shape is None and root is None:
        from tuner.commands.demo_data import demo_spec, ensure_demo_data

        root, _ = ensure_demo_data(demo_spec(spec.demo if spec else {}))
    budget_gb = args.budget or (spec.resources.vram_budget_gb if spec else 8.0)
    memory_report(configs, SliceSource(shape, root), budget_gb, sys.stdout)
    return 0


def _parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise SpecError(f"--shape: expected three positive integers coils,height,width like 16,768,396, got {text!r}")
    coils, height, width = (int(p) for p in parts)
    return coils, height, width


def _reconstruct(args: argparse.Namespace) -> int:
    run_reconstruct(ReconstructOptions(model=args.model, data=args.data, out=args.out, batch_size=args.batch_size,
                                       device=args.device, storage=args.storage.resolve(),
                                       tracking_uri=args.tracking_uri), sys.stdout)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if args.json is not None and args.json.exists():
        raise EvaluateError(f"--json {args.json}: already exists; choose a new file")
    result = evaluate(args.recon, args.data, args.split)
    report(result, sys.stdout)
    if args.json is not None:
        write_scores(args.json, result, args.recon, args.data)
        print(f"scores written to {args.json}")
    return 0


def _masks_build(args: argparse.Namespace) -> int:
    from data.augment import build_mask_bank
    from data.snu import SNUSliceDataset

    out = args.out if args.out.suffix == ".npz" else args.out.with_name(args.out.name + ".npz")
    if out.exists():
        raise DataFormatError(f"{out}: exists; choose another --out (a mask bank is never overwritten)")
    bank = build_mask_bank(SNUSliceDataset(args.data, args.split).files)
    bank.save(out)
    print(f"wrote {out}: {len(bank)} masks")
    for organ, acceleration, width in bank.keys():
        print(f"  {organ} x{acceleration} width {width}: {len(bank.masks(organ, acceleration, width))}")
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    from data.demo import DemoSpec, write_demo_dataset

    start = time.perf_counter()
    try:
        root = write_demo_dataset(args.out, DemoSpec(seed=args.seed))
    except FileExistsError as exc:
        raise DataFormatError(str(exc)) from None
    print(f"wrote demo dataset to {root} in {time.perf_counter() - start:.1f} s")
    return 0
