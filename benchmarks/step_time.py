"""Training-step time and peak memory of model configurations on one demo (or given-shape) slice.

    python benchmarks/step_time.py                       # the default search spaces' corner configs
    python benchmarks/step_time.py --shape 16,768,396    # a full-size SNU brain slice

Prints a table: parameters, forward+backward seconds per slice (median of --repeats after a
warm-up), and peak memory during those steps (CUDA allocator peak on a GPU; on the CPU the
process's peak resident memory, reset before each configuration, so it includes the process itself).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from models import build_model, count_parameters
from tuner.train import devices
from tuner.train.loss import LeaderboardLoss
from tuner.train.memory import MIB, MemoryMeter

CONFIGS = {
    "varnet c2 ch8 s4": {"name": "varnet", "num_cascades": 2, "chans": 8, "sens_chans": 4},
    "varnet c4 ch12 s4": {"name": "varnet", "num_cascades": 4, "chans": 12, "sens_chans": 4},
    "varnet c6 ch18 s8": {"name": "varnet", "num_cascades": 6, "chans": 18, "sens_chans": 8},
    "fivarnet 2+1 f6 u8 i8 s4": {"name": "fivarnet", "feature_cascades": 2, "image_cascades": 1, "feature_chans": 6,
                                 "unet_chans": 8, "image_chans": 8, "sens_chans": 4},
    "fivarnet 4+1 f8 u12 i8 s4": {"name": "fivarnet", "feature_cascades": 4, "image_cascades": 1, "feature_chans": 8,
                                  "unet_chans": 12, "image_chans": 8, "sens_chans": 4},
    "fivarnet 4+1 f8 u12 i8 s4 lska7": {"name": "fivarnet", "feature_cascades": 4, "image_cascades": 1,
                                        "feature_chans": 8, "unet_chans": 12, "image_chans": 8, "sens_chans": 4,
                                        "attention": "lska", "attention_kernel": 7},
    "fivarnet 6+2 f12 u16 i12 s8 lska11": {"name": "fivarnet", "feature_cascades": 6, "image_cascades": 2,
                                           "feature_chans": 12, "unet_chans": 16, "image_chans": 12, "sens_chans": 8,
                                           "attention": "lska", "attention_kernel": 11},
}


def step_seconds(config: dict, shape: tuple[int, int, int], repeats: int, device: torch.device) -> tuple[int, float, float]:
    """(parameters, median seconds per forward+backward+step, peak MiB) for one slice of `shape`."""
    torch.manual_seed(0)
    model = build_model(config).to(device)
    optimizer = torch.optim.NAdam(model.parameters(), lr=1e-4)
    loss_fn = LeaderboardLoss()
    coils, height, width = shape
    kspace = torch.randn(1, coils, height, width, 2, device=device) * 1e-4
    mask = torch.zeros(1, 1, 1, width, 1, dtype=torch.bool, device=device)
    mask[..., ::4, :] = True
    mask[..., width // 2 - width // 25: width // 2 + width // 25, :] = True
    target = torch.rand(1, height // 2, min(width, height // 2), device=device) * 3e-4
    times = []
    meter = MemoryMeter(device)
    meter.reset_peak()
    for i in range(repeats + 1):
        devices.synchronize(device)
        start = time.perf_counter()
        out = model(kspace * mask, mask)
        h, w = target.shape[-2:]
        top, left = (out.shape[-2] - h) // 2, (out.shape[-1] - w) // 2
        loss = loss_fn(out[..., top:top + h, left:left + w], target, target.amax(dim=(-2, -1)), ["brain"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        devices.synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    return count_parameters(model), statistics.median(times), meter.peak_bytes() / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="8,160,96", help="coils,H,W of the k-space slice (default: demo data)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", help="substring filter on config names")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    device = devices.resolve_device()
    print(f"device {device}, torch threads {torch.get_num_threads()}, slice {shape}")
    print(f"{'config':<38}{'params':>12}{'s/slice':>10}{'peak MiB':>10}")
    for name, config in CONFIGS.items():
        if args.only and args.only not in name:
            continue
        params, seconds, peak = step_seconds(config, shape, args.repeats, device)
        print(f"{name:<38}{params:>12,}{seconds:>10.3f}{peak:>10.0f}")


if __name__ == "__main__":
    main()
