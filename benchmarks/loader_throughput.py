"""Data-loader slices/s with each augmentation on and off, next to the model's training slices/s.

    python benchmarks/loader_throughput.py                     # demo data, default FI-VarNet
    python benchmarks/loader_throughput.py --data ROOT --workers 0,2
    python benchmarks/loader_throughput.py --full-size --model-seconds 0.58   # 16 x 768 x 396 files, vs a
                                                               # model step of 0.58 s (2025 model, H100)

The loader rows read, draw the augmentation (every scheduled augmentation at probability 1: the
worst case) and batch the training set, as a trial's loader does; the "on device" column is what the
trial's device then spends per slice preparing it (crop, MRAugment's resampling, coil compression,
mask: `data.batch`), part of every training step. The model row trains the space's warm-start
configuration on batches already in memory (or takes --model-seconds per slice). The loader should
run at least 5x the model's rate, or it slows training down.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from data.batch import BatchPreparation
from tuner.commands.demo_data import demo_spec, ensure_demo_data
from tuner.config.space import load_space
from tuner.config.trial import TrialConfig
from tuner.train import devices
from tuner.train.engine import Trainer
from tuner.train.loaders import TrialData

ROOT = Path(__file__).resolve().parents[1]
ALWAYS = {"kind": "constant", "p_max": 1.0}
SETTINGS: dict[str, dict[str, Any]] = {
    "no augmentation": {},
    "mask augmentation": {"mask": {"enabled": True, "schedule": ALWAYS}},
    "mask duplication (4x and 8x)": {"duplication": {"enabled": True}},
    "MRAugment, all transforms": {"mraugment": {"enabled": True, "schedule": ALWAYS, "flip_h": 1.0, "flip_v": 1.0}},
    "crop + GCC to 8 coils": {"crop": {"height": "half"}, "compression": {"method": "gcc", "num_virtual_coils": 8}},
    "all of the above": {"mask": {"enabled": True, "schedule": ALWAYS}, "duplication": {"enabled": True},
                         "mraugment": {"enabled": True, "schedule": ALWAYS},
                         "crop": {"height": "half"}, "compression": {"method": "gcc", "num_virtual_coils": 8}},
}


def loader_rate(root: Path, base: TrialConfig, augment: dict[str, Any], workers: int, slices: int,
                device: torch.device) -> tuple[float, float]:
    """(training slices per second through `TrialData.train_loader` at batch 1, after one warm-up item;
    seconds per slice `data.batch` then spends on `device`)."""
    config = TrialConfig.from_dict({**base.as_dict(), "augment": augment,
                                    "train": {**base.as_dict()["train"], "num_workers": workers}})
    data = TrialData(root, config.train, config.augment)
    batches = iter(data.train_loader(epoch=10))
    next(batches)
    start = time.perf_counter()
    loaded = list(itertools.islice(batches, slices))
    rate = len(loaded) / (time.perf_counter() - start)
    prepare = BatchPreparation(config.augment, train=True)
    prepare(loaded[0], device)
    devices.synchronize(device)
    start = time.perf_counter()
    for batch in loaded:
        prepare(batch, device)
    devices.synchronize(device)
    return rate, (time.perf_counter() - start) / len(loaded)


def model_rate(root: Path, config: TrialConfig, slices: int) -> float:
    """Training steps (forward, backward, optimiser) per second on batches already loaded."""
    trainer = Trainer(config, total_epochs=1)
    batches = list(itertools.islice(TrialData(root, config.train).train_loader(0), slices + 1))
    trainer.backward(batches[0])
    trainer.optimizer.zero_grad(set_to_none=True)
    start = time.perf_counter()
    for batch in batches[1:]:
        trainer.backward(batch)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
    devices.synchronize(trainer.device)
    return (len(batches) - 1) / (time.perf_counter() - start)


def write_full_size(root: Path, files: int = 5, shape: tuple[int, int, int] = (16, 768, 396)) -> Path:
    """A small SNU-layout train split of full-size brain slices (random k-space; loaders don't care)."""
    rng = np.random.default_rng(0)
    coils, height, width = shape
    mask = np.zeros(width, np.float32)
    mask[::4] = 1
    mask[width // 2 - 16: width // 2 + 16] = 1
    for split, name in itertools.product(("train", "val"), range(files)):
        for kind in ("kspace", "image"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        kspace = (rng.standard_normal((2, coils, height, width)) + 1j * rng.standard_normal((2, coils, height, width)))
        with h5py.File(root / split / "kspace" / f"brain_acc4_{name}.h5", "w") as f:
            f["kspace"] = kspace.astype(np.complex64)
            f["mask"] = mask
        with h5py.File(root / split / "image" / f"brain_acc4_{name}.h5", "w") as f:
            f["image_label"] = rng.random((2, 384, 384), dtype=np.float32)
            f.attrs["max"] = 1.0
    return root


def _resolve(augment: dict[str, Any], height: int) -> dict[str, Any]:
    crop = augment.get("crop", {})
    if crop.get("height") == "half":
        return {**augment, "crop": {"height": height // 2}}
    return augment


def report(root: Path, config: TrialConfig, workers: list[int], slices: int, model_seconds: float | None) -> None:
    device = devices.resolve_device()
    largest = TrialData(root, config.train).largest_batch().kspace.shape
    height, shape = largest[2], "x".join(map(str, largest[1:4]))
    print(f"\ndata {root} (largest slice {shape}), batch 1, torch threads {torch.get_num_threads()}, device {device}")
    if model_seconds is None:
        model = model_rate(root, config, slices)
        print(f"{'model training (' + config.short_name() + ')':<46}{model:>10.2f} slices/s")
    else:
        model = 1 / model_seconds
        print(f"{'model training (given)':<46}{model:>10.2f} slices/s ({model_seconds} s per slice)")
    print(f"{'augmentation':<32}{'workers':>8}{'loader slices/s':>17}{'x model':>9}{'on device s/slice':>19}")
    for (name, augment), count in itertools.product(SETTINGS.items(), workers):
        rate, prepare_seconds = loader_rate(root, config, _resolve(augment, height), count, slices, device)
        print(f"{name:<32}{count:>8}{rate:>17.2f}{rate / model:>9.1f}{prepare_seconds:>19.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="data root (default: the demo data)")
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "fivarnet.yaml",
                        help="the model is this space's first warm-start point")
    parser.add_argument("--workers", default="0", help="comma-separated DataLoader worker counts")
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--full-size", action="store_true", help="time the loader on 16x768x396 slices instead")
    parser.add_argument("--model-seconds", type=float,
                        help="compare with a model step of this many seconds per slice instead of measuring one")
    args = parser.parse_args()
    spec = load_space(args.space)
    config = spec.trial_config(spec.search.points_to_evaluate[0]) if spec.search.points_to_evaluate else \
        spec.trial_config({p.key: p.corners()[0] for p in spec.params})
    workers = [int(w) for w in args.workers.split(",")]
    if args.full_size:
        with tempfile.TemporaryDirectory() as tmp:
            report(write_full_size(Path(tmp)), config, workers, min(args.slices, 8), args.model_seconds)
        return
    root = args.data or ensure_demo_data(demo_spec(spec.demo))[0]
    report(root, config, workers, args.slices, args.model_seconds)


if __name__ == "__main__":
    main()
