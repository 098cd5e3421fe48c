"""`python -m tuner memory`: what one training step of a space's configurations needs, measured here.

For the space's smallest and largest corners, its warm-start points and any given configuration, the
report builds the model, runs one real training step (`tuner.train.probe`) with activation
checkpointing off and on, and prints parameters, peak memory, step time and whether it fits the budget.
The slice is either a synthetic one of a given (coils, height, width) or the largest training slice of
a data root, exactly what a trial's probe would use.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
import yaml

from tuner.commands.demo_data import demo_spec, ensure_demo_data
from tuner.config.domain import Param
from tuner.config.space import SearchSpace, load_space
from tuner.config.trial import CONFIG_SECTIONS, ConfigError, TrialConfig, count_parameters_of
from tuner.config.yaml_file import read_yaml
from tuner.contract import SpecError
from tuner.train import devices
from tuner.train.engine import Trainer
from tuner.train.loaders import TrialData
from tuner.train.memory import GIB, format_bytes, is_out_of_memory
from tuner.train.probe import OutOfBudget, StepMeasurement, measure_training_step, synthetic_batch, warm_up


@dataclass(frozen=True)
class NamedConfig:
    label: str
    config: TrialConfig


@dataclass(frozen=True)
class MemoryRow:
    """One configuration's measurements; a measurement is None where the step did not fit."""

    label: str
    config: TrialConfig
    num_parameters: int
    plain: StepMeasurement | None
    checkpointed: StepMeasurement | None


def corner_configs(spec: SearchSpace) -> list[NamedConfig]:
    """The space's smallest and largest corners, then its warm-start points, as trial configs."""
    out = [NamedConfig("smallest", spec.trial_config(_corner(spec.params, spec.fixed, largest=False))),
           NamedConfig("largest", spec.trial_config(_corner(spec.params, spec.fixed, largest=True)))]
    for i, point in enumerate(spec.search.points_to_evaluate, start=1):
        out.append(NamedConfig(f"warm start {i}", spec.trial_config(point)))
    return out


def load_config_file(path: Path) -> NamedConfig:
    """A trial config YAML (`{model: {...}, train: {...}, augment: {...}}`), as trials and finalize write it."""
    try:
        raw = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read a config YAML ({exc})") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("model"), Mapping):
        raise ConfigError(f"{path}: expected a mapping with a 'model:' section (and optionally 'train:', 'augment:')")
    unknown = sorted(set(raw) - set(CONFIG_SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key '{unknown[0]}' (expected {', '.join(CONFIG_SECTIONS)})")
    for section in CONFIG_SECTIONS[1:]:
        if not isinstance(raw.get(section) or {}, Mapping):
            raise ConfigError(f"{path}: '{section}:' must be a mapping")
    try:
        return NamedConfig(path.stem, TrialConfig.from_dict(raw))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


class SliceSource:
    """The batch a step is measured on: a synthetic slice of `shape`, or the largest training slice of `root`."""

    def __init__(self, shape: tuple[int, int, int] | None, root: Path | None) -> None:
        if (shape is None) == (root is None):
            raise ValueError("give exactly one of shape and root")
        self.shape = shape
        self.root = root

    def describe(self) -> str:
        if self.shape is not None:
            return f"a synthetic {'x'.join(map(str, self.shape))} slice"
        return f"the largest training slice of {self.root}"

    def batch(self, config: TrialConfig) -> Any:
        """The batch `config` would be probed on (its batch size; on real data also its crop and compression)."""
        if self.shape is not None:
            return synthetic_batch(self.shape, config.train.batch_size)
        return TrialData(self.root, config.train, config.augment).largest_batch()


def memory_report(configs: list[NamedConfig], source: SliceSource, budget_gb: float, out: TextIO) -> list[MemoryRow]:
    """Measure every configuration (checkpointing off and on), printing progress and then the table."""
    device = devices.resolve_device()
    budget = int(budget_gb * GIB)
    where = devices.device_name(device) if device.type == "cuda" else "the CPU (float32, no autocast)"
    print(f"one training step on {where}, {source.describe()}, budget {format_bytes(budget)}", file=out, flush=True)
    rows = []
    for named in configs:
        rows.append(measure(named, source, budget, device))
        print(f"  measured {named.label}", file=out, flush=True)
    print_report(rows, budget, out)
    return rows


def measure(named: NamedConfig, source: SliceSource, budget_bytes: int, device: torch.device) -> MemoryRow:
    """Measure one configuration with checkpointing off and on, each in a fresh process.

    A fresh process per measurement gives each the same clean allocator, and keeps a step that ran
    out of memory under the CPU limit from leaving the next one a damaged oneDNN (seen once: every
    later convolution failed with "could not create a primitive").
    """
    results: dict[bool, StepMeasurement | None] = {}
    for checkpointing in (False, True):
        config = named.config.with_checkpointing(checkpointing)
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results[checkpointing] = pool.submit(measure_in_this_process, config, source, budget_bytes,
                                                 str(device)).result()
    return MemoryRow(named.label, named.config, count_parameters_of(named.config), results[False], results[True])


def measure_in_this_process(config: TrialConfig, source: SliceSource, budget_bytes: int,
                            device_name: str) -> StepMeasurement | None:
    """One training step of `config` measured here, on `device_name` ("cpu", "cuda:0"); None when it does
    not fit the budget."""
    device = devices.resolve_device(device_name)
    warm_up(device)
    try:
        return measure_training_step(Trainer(config, total_epochs=1, device=device), source.batch(config),
                                     budget_bytes)
    except Exception as exc:
        # Weights alone may not fit either; any way of running out counts as not fitting.
        if not isinstance(exc, OutOfBudget) and not is_out_of_memory(exc):
            raise
        return None


def print_report(rows: list[MemoryRow], budget_bytes: int, out: TextIO) -> None:
    print(f"{'':12} {'configuration':44} {'params':>8}  {'peak, no ckpt':>15} {'peak, ckpt':>15}  "
          f"{'step s (no / ckpt)':>18}", file=out)
    for row in rows:
        print(f"{row.label:12} {row.config.short_name():44} {row.num_parameters / 1e6:7.2f}M  "
              f"{_peak(row.plain, budget_bytes):>15} {_peak(row.checkpointed, budget_bytes):>15}  "
              f"{_seconds(row.plain):>8} / {_seconds(row.checkpointed):<8}", file=out)


def _peak(step: StepMeasurement | None, budget_bytes: int) -> str:
    return f"> {format_bytes(budget_bytes)}" if step is None else format_bytes(step.peak_bytes)


def _seconds(step: StepMeasurement | None) -> str:
    return "-" if step is None else f"{step.seconds:.2f}"


def _corner(params: tuple[Param, ...], fixed: Mapping[str, Any], largest: bool) -> dict[str, Any]:
    """Each range at one end, each choice at its extreme: by value for numbers, by order otherwise."""
    config: dict[str, Any] = dict(fixed)
    for param in params:
        if not param.active(config):
            continue
        corners = param.corners()
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in corners):
            config[param.key] = max(corners) if largest else min(corners)
        else:
            config[param.key] = corners[-1] if largest else corners[0]
    return {k: v for k, v in config.items() if k not in fixed}


def main(args: argparse.Namespace) -> int:
    """Measure the space's corners and every `--config` on `--shape`, `--data`'s largest slice or the demo set's."""
    if args.space is None and not args.config:
        raise SpecError("memory: name a search-space YAML, or give --config")
    if args.budget is not None and args.budget <= 0:
        raise SpecError(f"--budget: expected a positive number of GB, got {args.budget}")
    shape = parse_shape(args.shape) if args.shape is not None else None
    spec = load_space(args.space) if args.space is not None else None
    configs = (corner_configs(spec) if spec else []) + [load_config_file(path) for path in args.config]
    root = args.data or (spec.data_root if spec else None)
    if shape is None and root is None:
        root, _ = ensure_demo_data(demo_spec(spec.demo if spec else {}))
    budget_gb = args.budget or (spec.resources.vram_budget_gb if spec else 8.0)
    memory_report(configs, SliceSource(shape, root), budget_gb, sys.stdout)
    return 0


def parse_shape(text: str) -> tuple[int, int, int]:
    """`--shape` "16,768,396" as (coils, height, width)."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise SpecError(f"--shape: expected three positive integers coils,height,width like 16,768,396, got {text!r}")
    coils, height, width = (int(p) for p in parts)
    return coils, height, width
