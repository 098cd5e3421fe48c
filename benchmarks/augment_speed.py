"""Seconds per slice of MRAugment, readout crop and coil compression: NumPy/SciPy reference vs torch.

    python benchmarks/augment_speed.py                          # a full-size SNU brain slice
    python benchmarks/augment_speed.py --shape 16,640,372 --repeats 9

Times the NumPy/SciPy code the torch versions replaced (``tests/reference_augment.py``) and the torch
code in ``data.augment`` on the same random complex64 k-space, side by side (the implementations
alternate within each repeat, so machine load hits both alike), after one warm-up call each. Prints
the median seconds of ``--repeats`` calls and the speed-up: on the CPU, and on CUDA when available
(synchronised around each call, k-space already on the GPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from data.augment import ImageTransform, augment_slice, compress_coils, crop_readout
from data.transforms import center_crop, ifft2c, rss
from tuner.train import devices

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference_augment.py"
# Rotation, scale, shift and shear together: the MRAugment case that needs interpolation.
TRANSFORM = ImageTransform(rotation_deg=23.0, scale=1.1, translation=(12.5, -7.0), shear_deg=(4.0, -3.0))


def load_reference():
    """The test-only NumPy/SciPy reference module, imported by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("reference_augment", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def workloads(reference, shape: tuple[int, int, int], seed: int = 0) -> dict[str, tuple[Callable, Callable]]:
    """Operation name -> (reference call, torch call taking the device) on one slice of ``shape``."""
    coils, height, width = shape
    rng = np.random.default_rng(seed)
    kspace = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    crop = (min(384, height), min(384, width))
    target = center_crop(rss(ifft2c(kspace)), crop).astype(np.float32)
    columns = np.zeros(width, dtype=bool)  # 4x equispaced plus 8 % centre lines
    columns[::4] = True
    columns[width // 2 - width // 25 : width // 2 + width // 25] = True
    rows, virtual = min(400, height), min(8, coils)
    tensors: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    def on(device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in tensors:
            tensors[device] = tuple(torch.from_numpy(a).to(device) for a in (kspace, target, columns))
        return tensors[device]

    return {
        "MRAugment (augment_slice, reflect)": (
            lambda: reference.augment_slice(kspace, target, 1.0, TRANSFORM),
            lambda d: augment_slice(on(d)[0], on(d)[1], 1.0, TRANSFORM),
        ),
        f"crop_readout to {rows} rows": (
            lambda: reference.crop_readout(kspace, rows),
            lambda d: crop_readout(on(d)[0], rows),
        ),
        f"SCC to {virtual} coils": (
            lambda: reference.compress_coils(kspace, "scc", virtual, columns),
            lambda d: compress_coils(on(d)[0], "scc", virtual, on(d)[2]),
        ),
        f"GCC to {virtual} coils": (
            lambda: reference.compress_coils(kspace, "gcc", virtual, columns),
            lambda d: compress_coils(on(d)[0], "gcc", virtual, on(d)[2]),
        ),
    }


def timed(call: Callable[[], object], device: torch.device | None) -> float:
    if device is not None:
        devices.synchronize(device)
    start = time.perf_counter()
    call()
    if device is not None:
        devices.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="16,768,396", help="coils,H,W of the k-space (default: 16,768,396)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per implementation (median reported)")
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    if len(shape) != 3 or min(shape) < 1 or args.repeats < 1:
        parser.error("--shape needs three positive integers and --repeats a positive count")
    targets = [torch.device("cpu")] + ([devices.resolve_device("cuda")] if torch.cuda.is_available() else [])
    print(f"k-space {shape} complex64, median of {args.repeats} after a warm-up; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads (torch.get_num_threads())")
    header = f"{'operation':38s} {'reference s':>12s}" + "".join(
        f" {'torch ' + d.type + ' s':>14s} {'speed-up':>9s}" for d in targets
    )
    print(header)
    print("-" * len(header))
    for name, (reference_call, torch_call) in workloads(load_reference(), shape).items():
        reference_call()
        for device in targets:
            torch_call(device)
        times: dict[str, list[float]] = {"reference": []} | {d.type: [] for d in targets}
        for _ in range(args.repeats):
            times["reference"].append(timed(reference_call, None))
            for device in targets:
                times[device.type].append(timed(lambda: torch_call(device), device))
        medians = {key: statistics.median(values) for key, values in times.items()}
        row = f"{name:38s} {medians['reference']:12.4f}"
        for device in targets:
            row += f" {medians[device.type]:14.4f} {medians['reference'] / medians[device.type]:8.1f}x"
        print(row, flush=True)


if __name__ == "__main__":
    main()
