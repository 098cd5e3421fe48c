"""`python -m tuner demo-data`, and the demo set a search or `memory` uses when no data is given: generated once
for each demo spec and cached."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

from data import DataFormatError
from data import validation as check
from data.demo import SPEC_FILE, DemoSpec, ensure_demo_dataset, write_demo_dataset


def cache_dir() -> Path:
    """$VARNET_TUNER_CACHE, else $XDG_CACHE_HOME/varnet-tuner, else ~/.cache/varnet-tuner."""
    if os.environ.get("VARNET_TUNER_CACHE"):
        return Path(os.environ["VARNET_TUNER_CACHE"]).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "varnet-tuner").resolve()


def demo_spec(overrides: Mapping[str, Any]) -> DemoSpec:
    """A DemoSpec from the YAML's `demo:` section; unknown keys are named in the error."""
    check.no_unknown(overrides, [f.name for f in dataclasses.fields(DemoSpec)], "demo.")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    try:
        return DemoSpec(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"demo: {exc}") from None


def ensure_demo_data(spec: DemoSpec) -> tuple[Path, float | None]:
    """The cached demo set for `spec`, generated if absent; returns (root, generation seconds or None if cached)."""
    key = json.dumps(spec.to_dict(), sort_keys=True)
    root = cache_dir() / f"demo-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    cached = (root / SPEC_FILE).exists()
    start = time.perf_counter()
    ensure_demo_dataset(root, spec)
    return root, None if cached else time.perf_counter() - start


def main(args: argparse.Namespace) -> int:
    """Write the demo dataset to a new folder `args.out`."""
    start = time.perf_counter()
    try:
        root = write_demo_dataset(args.out, DemoSpec(seed=args.seed))
    except FileExistsError as exc:
        raise DataFormatError(str(exc)) from None
    print(f"wrote demo dataset to {root} in {time.perf_counter() - start:.1f} s")
    return 0
