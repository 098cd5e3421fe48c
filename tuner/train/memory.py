"""Memory on the device a model trains on: measure peaks, hold allocations to a budget, recognise running out.

CUDA: the caching allocator's counters, and `set_per_process_memory_fraction` as the cap, so that what
fits under the cap on a large card fits an 8 GB card.

CPU: the process's resident set (Linux /proc), its peak reset per measurement through
/proc/self/clear_refs; RLIMIT_DATA (the process's private writable memory) is a safety net, so a step
far beyond the budget fails with a real allocation error instead of swapping or waking the kernel's
OOM killer. The CPU runs in float32 (no autocast), so its figures are an upper bound on what a GPU
with bf16 autocast needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import resource
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import torch

from tuner.train import devices

GIB = 2**30
MIB = 2**20
_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory")
CPU_LIMIT_FACTOR = 2.0


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocation failure on any device (CUDA OOM, CPU allocator ENOMEM, MemoryError)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES)


def describe_out_of_memory(exc: BaseException) -> str:
    """A short account of an allocation failure, e.g. "an allocation of 192 MB failed"."""
    text = str(exc)
    if match := re.search(r"tried to allocate (\d+) bytes", text, re.IGNORECASE):
        return f"an allocation of {format_bytes(int(match.group(1)))} failed"
    if match := re.search(r"tried to allocate ([\d.]+ [KMGT]i?B)", text, re.IGNORECASE):
        return f"an allocation of {match.group(1)} failed"
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def format_bytes(n: float) -> str:
    """"8 GB", "1.5 GB", "40 MB": memory the way people quote it."""
    return f"{n / GIB:.3g} GB" if n >= GIB else f"{n / MIB:.0f} MB"


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes held by the given tensors' storages, each storage counted once."""
    seen: set[int] = set()
    total = 0
    for tensor in tensors:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


class MemoryMeter:
    """Current and peak memory of this process on one device; `reset_peak` starts a new measurement."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def current_bytes(self) -> int:
        if self.device.type == "cuda":
            return devices.allocated_bytes(self.device)
        return _proc_status_bytes("VmRSS")

    def peak_bytes(self) -> int:
        """Peak since the last `reset_peak` (on a CPU without /proc/self/clear_refs: since process start)."""
        if self.device.type == "cuda":
            return devices.peak_allocated_bytes(self.device)
        try:
            return _proc_status_bytes("VmHWM")
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            devices.reset_peak(self.device)
            return
        # Memory freed earlier but still resident in malloc's heap would be reused without raising
        # the resident set, hiding part of the next peak: hand it back to the kernel first.
        _malloc_trim()
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            pass  # not Linux, or /proc is read-only: the peak then counts from process start


@contextmanager
def memory_budget(device: torch.device, budget_bytes: int) -> Iterator[None]:
    """Make allocations on `device` that take this process past its budget fail with an allocation error.

    On CUDA the cap is exact and stays in place on exit (a trial keeps it for all its epochs). On the CPU
    the kernel can only limit the process as a whole, so the limit is a safety net set
    `CPU_LIMIT_FACTOR` budgets above the process's present private memory (room for the allocator's and
    libraries' own overheads) and restored on exit; callers decide fit from the measured peak.
    """
    if device.type == "cuda":
        devices.cap_memory(device, budget_bytes)
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    try:
        limit = _proc_status_bytes("VmData") + int(CPU_LIMIT_FACTOR * budget_bytes)
    except OSError:
        yield  # no /proc: nothing to measure the limit against, so no CPU safety net
        return
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _malloc_trim() -> None:
    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name)
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _proc_status_bytes(field: str) -> int:
    for line in _PROC_STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"{_PROC_STATUS}: no {field} line")
