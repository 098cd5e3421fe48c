"""Does a configuration train within the memory budget? One real training step decides.

`measure_training_step` runs forward, loss and backward on one batch (in practice the largest slice
of the training set, repeated to the batch size) with room held for the optimiser's state, under the
budget (`tuner.train.memory.memory_budget`), and leaves the model exactly as it found it: gradients
dropped, RNG restored, no optimiser step. A step that runs out of memory, or whose measured peak is
over the budget, raises `OutOfBudget`. Peaks count everything the step needs: weights, gradients,
optimiser moments and activations.
"""

from __future__ import annotations

import gc
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import default_collate

from data.masks import make_mask
from data.snu import RawSlice, VarNetSample, to_sample
from tuner.config.trial import TrialConfig
from tuner.train import devices
from tuner.train.engine import Trainer
from tuner.train.memory import (
    MIB,
    MemoryMeter,
    describe_out_of_memory,
    format_bytes,
    is_out_of_memory,
    memory_budget,
    tensor_bytes,
)

# The challenge's leaderboard images are 384 x 384; smaller k-space is scored at its own size.
TARGET_SIZE = 384
# Adam, AdamW and NAdam keep two tensors per parameter (first and second moments).
OPTIMIZER_STATE_TENSORS = 2


class OutOfBudget(Exception):
    """One training step of this configuration does not fit the memory budget."""

    def __init__(self, budget_bytes: int | None, shape: tuple[int, ...], detail: str) -> None:
        limit = "the device's memory" if budget_bytes is None else f"the {format_bytes(budget_bytes)} budget"
        super().__init__(f"one training step on a {'x'.join(map(str, shape))} slice does not fit {limit} "
                         f"({detail})")
        self.budget_bytes = budget_bytes
        self.shape = shape


@dataclass(frozen=True)
class StepMeasurement:
    """Peak memory of one training step (weights, gradients, optimiser state, activations) and its time."""

    peak_bytes: int
    seconds: float
    shape: tuple[int, ...]

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / MIB


def measure_training_step(trainer: Trainer, batch: VarNetSample, budget_bytes: int | None) -> StepMeasurement:
    """Peak memory and time of one forward/backward of `batch`, held to `budget_bytes` (None: no budget).

    Raises `OutOfBudget` when the step runs out of memory, or when its measured peak exceeds the budget
    (on the CPU, where the budget cannot be enforced exactly, that is how most misfits show).
    """
    shape = tuple(batch.kspace.shape[:-1])
    meter = MemoryMeter(trainer.device)
    rng = devices.rng_state(trainer.device)
    held = tensor_bytes([*trainer.model.parameters(), *trainer.model.buffers()])
    placeholders: list[torch.Tensor] = []
    try:
        with memory_budget(trainer.device, budget_bytes) if budget_bytes else nullcontext():
            meter.reset_peak()
            before = meter.current_bytes()
            if not trainer.optimizer.state:
                # The first optimiser step will allocate the moments; hold their room during the step.
                placeholders = [torch.empty_like(p) for p in trainer.model.parameters() if p.requires_grad
                                for _ in range(OPTIMIZER_STATE_TENSORS)]
            start = time.perf_counter()
            trainer.backward(batch)
            devices.synchronize(trainer.device)
            seconds = time.perf_counter() - start
            peak = held + meter.peak_bytes() - before
    except Exception as exc:
        if not _ran_out(exc, trainer.device, budget_bytes):
            raise
        raise OutOfBudget(budget_bytes, shape, describe_out_of_memory(exc)) from None
    finally:
        placeholders.clear()
        trainer.optimizer.zero_grad(set_to_none=True)
        devices.set_rng_state(rng, trainer.device)
        devices.release_cached_memory(trainer.device)
    if budget_bytes and peak > budget_bytes:
        raise OutOfBudget(budget_bytes, shape, f"measured peak {format_bytes(peak)}")
    return StepMeasurement(peak_bytes=peak, seconds=seconds, shape=shape)


def fit_to_budget(config: TrialConfig, total_epochs: int, batch: VarNetSample, budget_bytes: int | None,
                  auto_checkpointing: bool, device: torch.device | None = None) -> tuple[Trainer, StepMeasurement]:
    """Build the trainer for `config` and measure one step of `batch` under the budget.

    If the step does not fit and `auto_checkpointing` allows, the configuration is built again with
    activation checkpointing (the same results for less memory and more time) and measured again.
    Returns the trainer to train with (its `config` says whether checkpointing was turned on) and
    its measured step; raises `OutOfBudget` when neither fits.
    """
    trainer = Trainer(config, total_epochs, device)
    try:
        return trainer, measure_training_step(trainer, batch, budget_bytes)
    except OutOfBudget:
        if not auto_checkpointing or config.model.checkpointing:
            raise
    device = trainer.device
    del trainer  # before the second model exists, or the re-measurement would pay for both
    gc.collect()
    devices.release_cached_memory(device)
    checkpointed = Trainer(config.with_checkpointing(True), total_epochs, device)
    return checkpointed, measure_training_step(checkpointed, batch, budget_bytes)


def _ran_out(exc: BaseException, device: torch.device, budget_bytes: int | None) -> bool:
    if is_out_of_memory(exc):
        return True
    # Under the CPU limit oneDNN reports a failed workspace allocation only as this.
    return (device.type == "cpu" and budget_bytes is not None and isinstance(exc, RuntimeError)
            and "could not create a primitive" in str(exc))


def synthetic_batch(shape: tuple[int, int, int], batch_size: int, seed: int = 0) -> VarNetSample:
    """A batch of one random multi-coil slice of `shape` (C, H, W) under an equispaced 4x mask."""
    coils, height, width = shape
    rng = np.random.default_rng(seed)
    kspace = rng.standard_normal((coils, height, width)) + 1j * rng.standard_normal((coils, height, width))
    mask = make_mask("equispaced", width, acceleration=4, center_fraction=0.08, seed=seed)
    target = rng.random((min(height, TARGET_SIZE), min(width, TARGET_SIZE)), dtype=np.float32)
    sample = to_sample(RawSlice(kspace, mask, target, 1.0, "brain_x4"), "synthetic", 0)
    return default_collate([sample] * batch_size)


def warm_up(device: torch.device) -> None:
    """Run one step of a tiny model so that one-time allocations (oneDNN and cuDNN workspaces, thread
    pools; about 30 MB on a CPU) are not charged to the first configuration measured afterwards."""
    tiny = TrialConfig.from_flat({"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2,
                                  "model.pools": 2, "model.sens_chans": 2, "model.sens_pools": 2})
    measure_training_step(Trainer(tiny, total_epochs=1, device=device), synthetic_batch((2, 32, 32), 1), None)
