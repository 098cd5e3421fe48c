"""Training and validation slices/s of the demo warm-start configuration and the 2025 FI-VarNet, before/after.

    python benchmarks/train_throughput.py                   # demo data, on CUDA where available
    python benchmarks/train_throughput.py --compile         # also train.compile=default (minutes to compile)
    python benchmarks/train_throughput.py --models demo     # only the demo warm start

Per model, on the demo data, each figure after one warm-up epoch:

- train slices/s: `Trainer.run_epoch`'s training part (loader, preparation on the device, forward,
  backward, optimiser). "before" reads in the training process without pinned memory, as trials did
  before loader workers (`train.num_workers: 0`); "after" is the default (`auto`: the same on a CPU,
  workers, pinned memory and persistent workers on a card); with --compile also `train.compile: default`;
- validation slices/s, before and after scoring moved to the device: "before" runs the model the same
  way and scores each slice on the CPU with NumPy inputs (`tuner.train.metrics.leaderboard_ssim`, what
  validation did), "after" is `Trainer.validate` (`leaderboard_ssim_batch` on the device).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tuner.commands.demo_data import demo_spec, ensure_demo_data
from tuner.commands.memory import load_config_file
from tuner.config.space import load_space
from tuner.config.trial import TrialConfig
from tuner.train import devices
from tuner.train.engine import Trainer, autocast
from tuner.train.loaders import TrialData
from tuner.train.metrics import SSIMAccumulator, leaderboard_ssim

ROOT = Path(__file__).resolve().parents[1]


def models() -> dict[str, TrialConfig]:
    spec = load_space(ROOT / "search_spaces" / "fivarnet.yaml")
    return {"demo": spec.trial_config(spec.search.points_to_evaluate[0]),
            "2025": load_config_file(ROOT / "search_spaces" / "configs" / "fivarnet_2025.yaml").config}


def train_rate(config: TrialConfig, root: Path, device: torch.device, epochs: int) -> tuple[float, Trainer, TrialData]:
    """Training slices per second of the last of `epochs` epochs (the first warms up)."""
    data = TrialData(root, config.train, config.augment, device=device)
    trainer = Trainer(config, total_epochs=epochs, device=device)
    seconds = 0.0
    for _ in range(epochs):
        seconds = trainer.run_epoch(data.train_loader(trainer.epoch, trainer.val_losses), data.val_loader()).train_seconds
    return data.slices_per_epoch / seconds, trainer, data


@torch.no_grad()
def validation_rates(trainer: Trainer, data: TrialData) -> tuple[float, float]:
    """Validation slices per second scored on the CPU per slice (before) and on the device (after)."""
    trainer.model.eval()
    start = time.perf_counter()
    before = SSIMAccumulator()
    for batch in data.val_loader():
        prepared = trainer.prepare_eval(batch, trainer.device)
        with autocast(trainer.device, trainer.autocast_dtype):
            recon = trainer.forward(prepared).float().cpu().numpy()
        for i, organ in enumerate(prepared.organs):
            before.add(prepared.category[i], leaderboard_ssim(recon[i], batch.target[i].numpy(),
                                                              float(batch.max_value[i]), organ))
    slices = before.summary().slices
    before_seconds = time.perf_counter() - start
    devices.synchronize(trainer.device)
    start = time.perf_counter()
    after = trainer.validate(data.val_loader())
    devices.synchronize(trainer.device)
    after_seconds = time.perf_counter() - start
    assert abs(after.overall - before.summary().overall) < 1e-6, "both score the same slices the same"
    return slices / before_seconds, slices / after_seconds


def with_train(config: TrialConfig, **values: object) -> TrialConfig:
    return TrialConfig.from_dict({**config.as_dict(), "train": {**config.as_dict()["train"], **values}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="data root (default: the demo data)")
    parser.add_argument("--models", default="demo,2025", help="comma-separated: demo, 2025")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per measurement; the last one is timed")
    parser.add_argument("--compile", action="store_true", help="also time train.compile=default")
    args = parser.parse_args()
    device = devices.resolve_device()
    root = args.data or ensure_demo_data(demo_spec({}))[0]
    print(f"device {devices.device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"data {root}")
    print(f"{'model':<44}{'train/s before':>15}{'after':>8}{'compiled':>10}{'val/s before':>14}{'after':>8}")
    for name in args.models.split(","):
        config = models()[name]
        before = train_rate(with_train(config, num_workers=0), root, device, args.epochs)[0]
        after, trainer, data = train_rate(config, root, device, args.epochs)
        val_before, val_after = validation_rates(trainer, data)
        compiled = "-"
        if args.compile:
            compiled = f"{train_rate(with_train(config, compile='default'), root, device, args.epochs)[0]:.2f}"
        label = f"{name}: {config.short_name()}"
        print(f"{label:<44}{before:>15.2f}{after:>8.2f}{compiled:>10}{val_before:>14.1f}{val_after:>8.1f}")


if __name__ == "__main__":
    main()
