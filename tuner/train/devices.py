"""The device a model trains or runs on, and every call into `torch.cuda` the project makes.

`torch.cuda` functions that take a device refuse an index-less `torch.device("cuda")` (a ValueError
from torch's own device check), while tensors accept it. So devices are resolved to an indexed one
once, here, and the CUDA calls below pass an integer ordinal. Nothing else in the project calls a
device-taking `torch.cuda` function (a test holds that), so this class of mistake has one place to live.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from data.errors import UserError


class DeviceError(UserError):
    """A device was asked for that this machine does not have (e.g. `--device cuda` without a card)."""


def resolve_device(choice: str | torch.device | None = None) -> torch.device:
    """`choice` ("cpu", "cuda", "cuda:1", a device, or None: CUDA where available) as a concrete device.

    A CUDA device always comes back with its index (the current device when none was given).
    """
    if choice is None:
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(choice)
    except RuntimeError as exc:
        raise DeviceError(f"device: expected cpu, cuda or cuda:<index>, got {choice!r} ({exc})") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise DeviceError(f"device: expected cpu, cuda or cuda:<index>, got {choice!r}")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {choice}: no CUDA device is available to torch here")
    index = cuda_index(device)
    if index >= torch.cuda.device_count():
        raise DeviceError(f"device {choice}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


def cuda_index(device: torch.device) -> int:
    """The ordinal that device-taking `torch.cuda` calls accept for a CUDA `device`.

    An index-less device means the current device, which is 0 until CUDA has been initialised (and
    `torch.cuda.set_device` initialises it), so asking never initialises CUDA by itself.
    """
    if device.type != "cuda":
        raise ValueError(f"expected a CUDA device, got {device}")
    if device.index is not None:
        return device.index
    return torch.cuda.current_device() if torch.cuda.is_initialized() else 0


def device_name(device: torch.device) -> str:
    """"NVIDIA H100 80GB HBM3 (cuda:0)", or "the CPU"."""
    if device.type != "cuda":
        return "the CPU"
    return f"{torch.cuda.get_device_name(cuda_index(device))} ({device})"


def total_memory(device: torch.device) -> int:
    """Bytes of memory on a CUDA device."""
    return torch.cuda.get_device_properties(cuda_index(device)).total_memory


def smallest_card_bytes() -> int:
    """Bytes of memory on the smallest CUDA device this process sees; a RuntimeError when it sees none."""
    count = torch.cuda.device_count()
    if count == 0:
        raise RuntimeError("no CUDA device is visible to this process")
    return min(total_memory(torch.device("cuda", i)) for i in range(count))


def memory_fraction(budget_bytes: int, total_bytes: int) -> float:
    """The fraction of a card's memory that is the budget, at most the whole card."""
    if budget_bytes <= 0 or total_bytes <= 0:
        raise ValueError(f"expected positive byte counts, got budget {budget_bytes} of {total_bytes}")
    return min(1.0, budget_bytes / total_bytes)


def memory_cap(device: torch.device, budget_bytes: int, total_bytes: int) -> tuple[float, int]:
    """What `torch.cuda.set_per_process_memory_fraction` takes to hold `device` (a card of `total_bytes`)
    to `budget_bytes`: (fraction, device ordinal)."""
    return memory_fraction(budget_bytes, total_bytes), cuda_index(device)


def cap_memory(device: torch.device, budget_bytes: int) -> None:
    """On CUDA, make allocations that take this process past `budget_bytes` on `device` fail (for good)."""
    if device.type != "cuda":
        return
    torch.cuda.set_per_process_memory_fraction(*memory_cap(device, budget_bytes, total_memory(device)))


def allocated_bytes(device: torch.device) -> int:
    """Bytes the caching allocator has handed out on a CUDA device."""
    return torch.cuda.memory_allocated(cuda_index(device))


def peak_allocated_bytes(device: torch.device) -> int:
    """The most `allocated_bytes` has been since the last `reset_peak`."""
    return torch.cuda.max_memory_allocated(cuda_index(device))


def reset_peak(device: torch.device) -> None:
    torch.cuda.reset_peak_memory_stats(cuda_index(device))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (so timings measure it); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(cuda_index(device))


def release_cached_memory(device: torch.device) -> None:
    """Return the caching allocator's free blocks to the card, so the next measurement starts clean."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def supports_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively (Ampere and newer NVIDIA cards)."""
    if device.type != "cuda":
        return False
    # Emulated bf16 (pre-Ampere cards) runs, but slower than fp16, so it does not count.
    with torch.cuda.device(cuda_index(device)):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every random state a training step can draw from: Python, NumPy, torch's CPU and `device`'s.

    Only tensors and plain values, so that a checkpoint holding it loads with `weights_only=True`.
    """
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"python": random.getstate(),
                             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
                             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(cuda_index(device))
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore `rng_state`'s result. A state saved on another kind of device restores what both have:
    a checkpoint written on a card resumes on a CPU and the other way round."""
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and isinstance(state.get("cuda"), torch.Tensor):
        torch.cuda.set_rng_state(state["cuda"], cuda_index(device))
