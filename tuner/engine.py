"""The training engine shared by search trials and the final run: epochs, validation, and state.

`Trainer` owns one model with its optimiser and schedule. `run_epoch` trains on every batch of the
training loader, steps the schedule, scores the validation set with the leaderboard SSIM and returns
an `EpochResult`. `state_dict` / `load_state_dict` capture everything needed to resume exactly:
weights, optimiser, schedule, the completed epoch count and every RNG.
"""

from __future__ import annotations

import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager, Iterable

import numpy as np
import torch

from data.transforms import crop_or_pad
from models import build_model, count_parameters
from tuner.config import TrainConfig, TrialConfig
from tuner.loss import LeaderboardLoss
from tuner.memory import MIB, MemoryMeter
from tuner.metrics import SSIMAccumulator, SSIMSummary, category_parts, leaderboard_ssim


@dataclass
class EpochResult:
    """What one epoch produced; `epoch` counts from 1."""

    epoch: int
    train_loss: float
    val: SSIMSummary
    lr: float
    train_seconds: float
    val_seconds: float
    peak_memory_mb: float

    def metrics(self) -> dict[str, float]:
        """Flat metric names shared by Tune reports, MLflow and the progress lines."""
        out = {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_ssim": self.val.overall,
            "lr": self.lr,
            "epoch_seconds": self.train_seconds + self.val_seconds,
            "val_seconds": self.val_seconds,
            "peak_memory_mb": self.peak_memory_mb,
        }
        out.update({f"val_ssim_{c}": v for c, v in self.val.per_category.items()})
        out.update({f"val_ssim_x{a}": v for a, v in self.val.per_acceleration.items()})
        return out


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Trainer:
    """Trains and validates one VarNet-family model; `total_epochs` sizes the cosine schedule."""

    def __init__(self, config: TrialConfig, total_epochs: int, device: torch.device | None = None) -> None:
        self.config = config
        self.train_config: TrainConfig = config.train
        self.device = device or pick_device()
        self.total_epochs = total_epochs
        torch.manual_seed(self.train_config.seed)
        self.model = build_model(dict(config.model)).to(self.device)
        self.num_parameters = count_parameters(self.model)
        self.optimizer = _make_optimizer(self.model, self.train_config)
        self.scheduler = _make_scheduler(self.optimizer, self.train_config, total_epochs)
        self.loss_fn = LeaderboardLoss(self.train_config.loss_ssim_weight, self.train_config.loss_l1_weight)
        self.autocast_dtype = autocast_dtype(self.train_config.mixed_precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.memory = MemoryMeter(self.device)
        self.epoch = 0
        # 1 - val SSIM per finished epoch: what loss-driven augmentation schedules watch.
        self.val_losses: list[float] = []

    def run_epoch(self, train_batches: Iterable[Any], val_batches: Iterable[Any]) -> EpochResult:
        """Train one epoch, step the schedule, validate; returns the epoch's numbers."""
        self.memory.reset_peak()
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        train_loss = self.train_epoch(train_batches)
        self.scheduler.step()
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        summary = self.validate(val_batches)
        self.epoch += 1
        self.val_losses.append(1.0 - summary.overall)
        return EpochResult(
            epoch=self.epoch, train_loss=train_loss, val=summary, lr=lr, train_seconds=train_seconds,
            val_seconds=time.perf_counter() - start, peak_memory_mb=self.memory.peak_bytes() / MIB,
        )

    def train_epoch(self, batches: Iterable[Any]) -> float:
        """One pass over the training batches with accumulation and clipping; returns the mean loss."""
        self.model.train()
        accumulate = self.train_config.grad_accumulation
        total, count = 0.0, 0
        self.optimizer.zero_grad(set_to_none=True)
        for count, batch in enumerate(batches, start=1):
            total += self.backward(batch, accumulate)
            if count % accumulate == 0:
                self._optimizer_step()
        if count == 0:
            raise ValueError("the training set yielded no batches")
        if count % accumulate:
            self._optimizer_step()
        return total / count

    def backward(self, batch: Any, accumulate: int = 1) -> float:
        """Forward, loss and backward for one batch, gradients added to `.grad`; returns the loss."""
        with self._autocast():
            output = self.forward(batch)
        loss = self.loss_fn(output, batch.target.to(self.device), batch.max_value.to(self.device),
                            [category_parts(c)[0] for c in batch.category])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at {batch.fname[0]} slice "
                                     f"{int(batch.slice_idx[0])}")
        self.scaler.scale(loss / accumulate).backward()
        return loss.item()

    @torch.no_grad()
    def validate(self, batches: Iterable[Any]) -> SSIMSummary:
        """Leaderboard SSIM of every validation slice, summarised per category and overall."""
        self.model.eval()
        scores = SSIMAccumulator()
        for batch in batches:
            with self._autocast():
                output = self.forward(batch)
            recon = output.float().cpu().numpy()
            for i, category in enumerate(batch.category):
                value = leaderboard_ssim(recon[i], batch.target[i].numpy(), float(batch.max_value[i]),
                                         category_parts(category)[0])
                scores.add(category, value)
        return scores.summary()

    def forward(self, batch: Any) -> torch.Tensor:
        """Model output for a batch, cropped (or padded) to the target's size: `(B, h, w)`."""
        return cropped_output(self.model, batch.masked_kspace.to(self.device), batch.mask.to(self.device),
                              tuple(batch.target.shape[-2:]))

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "val_losses": list(self.val_losses),
            "config": self.config.as_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.val_losses = [float(v) for v in state.get("val_losses", [])]

    def _optimizer_step(self) -> None:
        if self.train_config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train_config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _autocast(self) -> ContextManager[Any]:
        return autocast(self.device, self.autocast_dtype)


def cropped_output(model: torch.nn.Module, masked_kspace: torch.Tensor, mask: torch.Tensor,
                   shape: tuple[int, int]) -> torch.Tensor:
    """Model output for k-space `(B, C, H, W, 2)` and masks `(B, 1, 1, W, 1)`, cropped or padded to `shape`.

    Training, validation and `tuner reconstruct` all go through here, so a submission is scored on
    exactly the image validation scored.
    """
    return crop_or_pad(model(masked_kspace, mask), shape)


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager[Any]:
    """Autocast to `dtype` on `device`, or nothing when `dtype` is None (see `autocast_dtype`)."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    kinds = {"nadam": torch.optim.NAdam, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    return kinds[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_epochs: int) -> Any:
    sched = torch.optim.lr_scheduler
    if cfg.scheduler == "exponential":
        return sched.ExponentialLR(optimizer, gamma=cfg.lr_gamma)
    if cfg.scheduler == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(total_epochs, 1))
    if cfg.scheduler == "step":
        return sched.StepLR(optimizer, step_size=cfg.lr_step_epochs, gamma=cfg.lr_gamma)
    return sched.LambdaLR(optimizer, lambda _: 1.0)


def autocast_dtype(choice: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `train.mixed_precision` on `device`; None (float32) off CUDA or when "off"."""
    if device.type != "cuda" or choice == "off":
        return None
    if choice == "fp16":
        return torch.float16
    if choice == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
