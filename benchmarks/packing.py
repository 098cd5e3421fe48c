"""Trials packed on one card: training slices/s of 1, 2, 4 ... trials sharing a GPU, as a packed search runs them.

    python benchmarks/packing.py --data DEMO_ROOT                # on a machine with an NVIDIA GPU
    python benchmarks/packing.py --data DEMO_ROOT --trials 1,2,4 --model 2025
    python benchmarks/packing.py --data DEMO_ROOT --device cpu --trials 1,2  # the script itself, without a card

Each of K processes is what a trial is once Ray has placed it (no Ray here, so it runs where Ray
cannot be installed): the card capped at the trial's memory budget (`devices.cap_memory`), the node's
CPUs split evenly (torch threads and `train.num_workers: auto` from that share), and `Trainer` epochs
of the chosen model on the data. All K warm up one epoch, wait for each other, then train the timed
epochs together. Printed per K: the slowest trial's slices/s, their sum (what the search gets), the sum
over one trial alone, and each trial's peak allocated memory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from pathlib import Path
from typing import Any

import torch

from tuner.commands.memory import load_config_file
from tuner.config.space import load_space
from tuner.config.trial import TrialConfig
from tuner.train import devices
from tuner.train.engine import Trainer
from tuner.train.loaders import TrialData
from tuner.train.memory import GIB, format_bytes

ROOT = Path(__file__).resolve().parents[1]


def model(name: str) -> TrialConfig:
    if name == "demo":
        spec = load_space(ROOT / "search_spaces" / "fivarnet.yaml")
        return spec.trial_config(spec.search.points_to_evaluate[0])
    return load_config_file(ROOT / "search_spaces" / "configs" / "fivarnet_2025.yaml").config


def one_trial(name: str, root: Path, device_name: str, cpus: int, budget_gb: float, epochs: int,
              start: Any, results: Any) -> None:
    """One packed trial: warm up, wait for the others, time `epochs` epochs; puts (slices/s, peak bytes)."""
    torch.set_num_threads(cpus)
    device = devices.resolve_device(device_name)
    devices.cap_memory(device, int(budget_gb * GIB))
    config = model(name)
    data = TrialData(root, config.train, config.augment, device=device, cpus=cpus)
    trainer = Trainer(config, total_epochs=epochs + 1, device=device)
    trainer.run_epoch(data.train_loader(trainer.epoch, trainer.val_losses), data.val_loader())
    start.wait()
    on_card = device.type == "cuda"
    if on_card:
        devices.reset_peak(device)
    seconds = 0.0
    for _ in range(epochs):
        seconds += trainer.run_epoch(data.train_loader(trainer.epoch, trainer.val_losses),
                                     data.val_loader()).train_seconds
    results.put((epochs * data.slices_per_epoch / seconds, devices.peak_allocated_bytes(device) if on_card else 0))


def packed_rates(name: str, root: Path, device: str, trials: int, budget_gb: float,
                 epochs: int) -> list[tuple[float, int]]:
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(trials), context.Queue()
    cpus = max(1, len(os.sched_getaffinity(0)) // trials)
    processes = [context.Process(target=one_trial, args=(name, root, device, cpus, budget_gb, epochs, start, results))
                 for _ in range(trials)]
    for process in processes:
        process.start()
    rates = [results.get() for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a packed trial exited with code {process.exitcode}")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="data root (e.g. `python -m tuner demo-data`)")
    parser.add_argument("--trials", default="1,2,4,8", help="comma-separated trial counts sharing the card")
    parser.add_argument("--model", choices=("demo", "2025"), default="demo")
    parser.add_argument("--budget-gb", type=float, default=8.0, help="each trial's memory cap")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per trial, after one warm-up epoch")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the script without a card")
    args = parser.parse_args()
    device = devices.resolve_device(args.device)
    print(f"{devices.device_name(device)}, {len(os.sched_getaffinity(0))} CPUs, model {args.model}: "
          f"{model(args.model).short_name()}, budget {args.budget_gb:g} GB per trial, data {args.data}")
    print(f"{'trials':>6}{'CPUs each':>11}{'slowest/s':>11}{'sum/s':>9}{'x one':>8}  peak allocated each")
    alone = None
    for trials in (int(k) for k in args.trials.split(",")):
        rates = packed_rates(args.model, args.data, args.device, trials, args.budget_gb, args.epochs)
        total = sum(rate for rate, _ in rates)
        alone = alone or total
        peaks = ", ".join(sorted({format_bytes(peak) for _, peak in rates}))
        print(f"{trials:>6}{len(os.sched_getaffinity(0)) // trials:>11}{min(r for r, _ in rates):>11.2f}"
              f"{total:>9.2f}{total / alone:>8.2f}  {peaks}", flush=True)


if __name__ == "__main__":
    main()
