"""Which data a run trains on: a user's SNU-layout root, or the simulated demo set, generated once and cached."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

from data import DataFormatError
from data.demo import SPEC_FILE, DemoSpec, ensure_demo_dataset
from data.layout import open_split


def cache_dir() -> Path:
    """$VARNET_TUNER_CACHE, else $XDG_CACHE_HOME/varnet-tuner, else ~/.cache/varnet-tuner."""
    if os.environ.get("VARNET_TUNER_CACHE"):
        return Path(os.environ["VARNET_TUNER_CACHE"]).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "varnet-tuner").resolve()


def demo_spec(overrides: Mapping[str, Any]) -> DemoSpec:
    """A DemoSpec from the YAML's `demo:` section; unknown keys are named in the error."""
    known = {f.name for f in dataclasses.fields(DemoSpec)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"demo.{unknown[0]}: unknown key (expected one of {sorted(known)})")
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


def check_data_root(root: Path) -> tuple[int, int]:
    """Open and validate the train and val splits before anything starts; returns their slice counts."""
    if not root.is_dir():
        raise DataFormatError(f"{root}: no such data directory")
    return len(open_split(root, "train")), len(open_split(root, "val"))
