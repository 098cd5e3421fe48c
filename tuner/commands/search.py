"""`python -m tuner search`: check everything a search needs, then hand it to the Ray driver.

Preflight, in order and before Ray or MLflow write anything: the space YAML (or, with `--resume`, the
settings the search started with), the tracking URI, the data (the demo set is generated once and
cached), its shapes against the largest batch size, and the mask bank. A problem with any of them is
one `error:` line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from data import DataFormatError
from data import validation as check
from data.augment import MaskBank
from data.layout import open_split
from data.snu import require_finite_arrays
from tuner.commands.demo_data import demo_spec, ensure_demo_data
from tuner.config.space import SearchSpace, load_space
from tuner.contract import INTERRUPTED, RECORD_FILE, SPACE_FILE, SearchError, SpecError
from tuner.search.record import SearchRecord
from tuner.search.storage import SearchStorage
from tuner.train.loaders import require_one_shape
from tuner.train.progress import progress_interval_s


def main(args: argparse.Namespace) -> int:
    """Exit code 0 when the search found a best trial, 1 when none scored, 130 when it was interrupted."""
    # MLflow is imported here, not with the module: `--help` and a bad space answer without it.
    from tuner.tracking.runs import open_store, resolve_tracking_uri

    if args.name is not None:
        try:
            check.plain_name("--name", args.name)
        except ValueError as exc:
            raise SearchError(str(exc)) from None
    storage = SearchStorage.parse(args.storage)
    if args.resume:
        spec, data_root, tracking_uri = resumed_settings(args, storage)
    else:
        if args.space is None:
            raise SearchError("search: name a search-space YAML, e.g. search_spaces/fivarnet.yaml")
        spec = load_space(args.space).replace(
            num_samples=args.num_samples, seed=args.seed, max_epochs=args.max_epochs, data_root=args.data)
        tracking_uri = resolve_tracking_uri(args.tracking_uri)
        data_root = spec.data_root if spec.data_root is not None else _demo_root(spec, args.space)
    check_data(spec, data_root)
    progress_interval_s()  # a malformed setting is an error now, not in every trial
    open_store(tracking_uri)  # last: a new sqlite store is created here
    address = args.address or os.environ.get("RAY_ADDRESS")
    if not address:
        keep_local_ray_on_loopback()
    # Ray is imported only once the space, the store and the data are known to be good.
    from tuner.search.driver import SearchOptions, run_search

    name = args.name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    options = SearchOptions(name=name, storage=storage, data_root=data_root.resolve(), tracking_uri=tracking_uri,
                            address=address, resume=args.resume)
    record = run_search(spec, options)
    if record.status == INTERRUPTED:
        return 130
    return 0 if record.best is not None else 1


def keep_local_ray_on_loopback() -> None:
    """Make the Ray this process starts listen on 127.0.0.1 only (GCS, raylet, workers; the dashboard is off).

    On Linux Ray advertises and serves on the machine's network address so that other nodes can join.
    A local search has no other nodes; Ray's own switch for single-machine mode (the one it uses on
    macOS and Windows) puts every listener on loopback. It is read when Ray is imported, so it is set
    before that; a search with `--address` joins a real cluster and is left as Ray configures it.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def resumed_settings(args: argparse.Namespace, storage: SearchStorage) -> tuple[SearchSpace, Path, str]:
    """The space, data and store a search was started with; a resumed search keeps all of them.

    With remote storage, a machine that does not have the search's folder fetches its record and
    space from the store.
    """
    if not args.name:
        raise SearchError("--resume: name the search to continue with --name")
    given = {"SPACE": args.space, "--data": args.data, "--num-samples": args.num_samples,
             "--max-epochs": args.max_epochs, "--seed": args.seed, "--tracking-uri": args.tracking_uri}
    for flag, value in given.items():
        if value is not None:
            raise SearchError(f"{flag}: a resumed search keeps the settings it started with; leave it out")
    record_path = storage.local / args.name / RECORD_FILE
    if not record_path.exists() and not storage.download(args.name, [RECORD_FILE, SPACE_FILE]):
        raise SearchError(f"{storage.experiment(args.name)}: no search to resume there")
    record = SearchRecord.load(record_path)
    # The copy in this folder: a record fetched from remote storage names the folder it was written in.
    return load_space(record_path.parent / SPACE_FILE), Path(record.data_root), record.tracking_uri


def check_data(spec: SearchSpace, root: Path) -> None:
    """Open both splits, check the training shapes against the largest batch size and the mask bank, then
    read every value once: a NaN anywhere is an error now rather than a crashed trial days later."""
    if not root.is_dir():
        raise DataFormatError(f"{root}: no such data directory")
    train, val = open_split(root, "train"), open_split(root, "val")
    require_one_shape(train.files, spec.largest_value("train.batch_size", 1))
    if spec.mask_bank is not None:
        MaskBank.load(spec.mask_bank)
    start = time.perf_counter()
    scanned = require_finite_arrays(train.value_arrays + val.value_arrays)
    print(f"data: {root} ({len(train)} training slices, {len(val)} validation slices; "
          f"{scanned / 1e9:.2f} GB of values checked finite in {time.perf_counter() - start:.1f} s)")


def _demo_root(spec: SearchSpace, space: Path) -> Path:
    try:
        root, seconds = ensure_demo_data(demo_spec(spec.demo))
    except ValueError as exc:
        raise SpecError(f"{space}: {exc}") from None
    print(f"demo data ({'cached' if seconds is None else f'generated in {seconds:.1f} s'}): {root}")
    return root
