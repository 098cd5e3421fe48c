"""The training engine shared by search trials and the final run: epochs, validation, and state.

`Trainer` owns one model with its optimiser and schedule. `run_epoch` trains on every batch of the
training loader, steps the schedule, scores the validation set with the leaderboard SSIM and returns
an `EpochResult`. `state_dict` / `load_state_dict` capture everything needed to resume exactly:
weights, optimiser, schedule, the completed epoch count and every RNG.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable

import torch

from data.batch import BatchPreparation, ModelBatch
from data.snu import VarNetSample
from data.transforms import crop_or_pad
from models import build_model, count_parameters
from tuner.config.trial import TrainConfig, TrialConfig
from tuner.contract import METRIC
from tuner.train import devices
from tuner.train.loss import LeaderboardLoss
from tuner.train.memory import MIB, MemoryMeter
from tuner.train.metrics import SSIMAccumulator, SSIMSummary, leaderboard_ssim_batch


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
            METRIC: self.val.overall,
            "lr": self.lr,
            "epoch_seconds": self.train_seconds + self.val_seconds,
            "val_seconds": self.val_seconds,
            "peak_memory_mb": self.peak_memory_mb,
        }
        out.update({f"val_ssim_{c}": v for c, v in self.val.per_category.items()})
        out.update({f"val_ssim_x{a}": v for a, v in self.val.per_acceleration.items()})
        return out


class Trainer:
    """Trains and validates one VarNet-family model on one device; `total_epochs` sizes the cosine schedule.

    `device` is resolved by `tuner.train.devices.resolve_device` (None: CUDA where available). Batches come
    as the loaders collate them and are prepared on the device (`data.batch`): augmentation that needs
    whole slices, then the mask.
    """

    def __init__(self, config: TrialConfig, total_epochs: int, device: str | torch.device | None = None) -> None:
        self.config = config
        self.train_config: TrainConfig = config.train
        self.device = devices.resolve_device(device)
        self.total_epochs = total_epochs
        torch.manual_seed(self.train_config.seed)
        self.model = build_model(config.model).to(self.device)
        self.num_parameters = count_parameters(self.model)
        self.optimizer = _make_optimizer(self.model, self.train_config)
        self.scheduler = _make_scheduler(self.optimizer, self.train_config, total_epochs)
        self.loss_fn = LeaderboardLoss(self.train_config.loss_ssim_weight, self.train_config.loss_l1_weight)
        self.autocast_dtype = autocast_dtype(self.train_config.mixed_precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        self.prepare_train = BatchPreparation(config.augment, train=True)
        self.prepare_eval = BatchPreparation(config.augment, train=False)
        self.network = compiled(self.model, self.train_config.compile)
        self.memory = MemoryMeter(self.device)
        self.epoch = 0
        # 1 - val SSIM per finished epoch: what loss-driven augmentation schedules watch.
        self.val_losses: list[float] = []

    def run_epoch(self, train_batches: Iterable[Any], val_batches: Iterable[Any],
                  on_batch: Callable[[int, float], None] | None = None) -> EpochResult:
        """Train one epoch, step the schedule, validate; returns the epoch's numbers. `on_batch(slices, loss)`
        is called after every training batch."""
        self.memory.reset_peak()
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        train_loss = self.train_epoch(train_batches, on_batch)
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

    def train_epoch(self, batches: Iterable[Any], on_batch: Callable[[int, float], None] | None = None) -> float:
        """One pass over the training batches with accumulation and clipping; returns the mean loss."""
        self.model.train()
        accumulate = self.train_config.grad_accumulation
        total, count = 0.0, 0
        self.optimizer.zero_grad(set_to_none=True)
        for count, batch in enumerate(batches, start=1):
            loss = self.backward(batch, accumulate)
            total += loss
            if count % accumulate == 0:
                self._optimizer_step()
            if on_batch is not None:
                on_batch(len(batch.kspace), loss)
        if count == 0:
            raise ValueError("the training set yielded no batches")
        if count % accumulate:
            self._optimizer_step()
        return total / count

    def backward(self, batch: VarNetSample, accumulate: int = 1) -> float:
        """Forward, loss and backward for one batch, gradients added to `.grad`; returns the loss."""
        prepared = self.prepare_train(batch, self.device)
        with self._autocast():
            output = self.forward(prepared)
        loss = self.loss_fn(output, prepared.target, prepared.max_value, prepared.organs)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at {prepared.fname[0]} slice "
                                     f"{int(prepared.slice_idx[0])}")
        self.scaler.scale(loss / accumulate).backward()
        return loss.item()

    @torch.no_grad()
    def validate(self, batches: Iterable[VarNetSample]) -> SSIMSummary:
        """Leaderboard SSIM of every validation slice, computed on the device, summarised per category."""
        self.model.eval()
        scores = SSIMAccumulator()
        for batch in batches:
            prepared = self.prepare_eval(batch, self.device)
            with self._autocast():
                output = self.forward(prepared)
            values = leaderboard_ssim_batch(output.float(), prepared.target, prepared.max_value, prepared.organs)
            for category, value in zip(prepared.category, values.tolist(), strict=True):
                scores.add(category, value)
        return scores.summary()

    def forward(self, batch: ModelBatch) -> torch.Tensor:
        """Model output for a prepared batch, cropped (or padded) to the target's size: `(B, h, w)`."""
        return cropped_output(self.network, batch.masked_kspace, batch.mask, tuple(batch.target.shape[-2:]))

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": devices.rng_state(self.device),
            "val_losses": list(self.val_losses),
            "config": self.config.as_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            # Empty when it was saved without gradient scaling (e.g. "auto" precision on a CPU, resumed on a
            # card that scales fp16): the scaler then starts fresh, as it would in a new run.
            self.scaler.load_state_dict(state["scaler"])
        devices.set_rng_state(state["rng"], self.device)
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
    """The autocast dtype for `train.mixed_precision` on `device`; None means float32.

    "auto" is bf16 on cards that compute it natively, else fp16 (with gradient scaling), and float32
    on the CPU, where half precision is slower on most processors. "bf16" and "fp16" are honoured on
    any device.
    """
    if choice == "off" or (choice == "auto" and device.type != "cuda"):
        return None
    if choice == "fp16":
        return torch.float16
    if choice == "bf16" or devices.supports_bf16(device):
        return torch.bfloat16
    return torch.float16


def compiled(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """`model` itself, or its `torch.compile`d wrapper (`train.compile`); both share the parameters.

    "reduce-overhead" replays CUDA graphs, one per input shape, on a card. Shapes change with coil
    counts and widths, so compilation is dynamic after the first recompile (torch's default).
    """
    if mode == "off":
        return model
    return torch.compile(model, mode=mode)  # type: ignore[return-value]
