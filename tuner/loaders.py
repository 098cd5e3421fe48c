"""Data loaders for one data root: seeded per-epoch shuffling and optional per-epoch slice budgets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, Subset, default_collate

from data.augment import AugmentConfig, MaskBank, SliceAugmenter, build_mask_bank
from data.layout import open_split
from tuner.config import ConfigError, TrainConfig


class TrialData:
    """The training and validation sets of a data root (SNU or fastMRI layout), as loaders for an epoch.

    Shuffling is seeded by (seed, epoch), so a resumed trial sees the same order it would have seen.
    `train_slices_per_epoch` draws that many slices per epoch; `val_slices` keeps a fixed, evenly spread
    subset of the validation set so every epoch and every trial is scored on the same slices.

    `augment` (`data.augment`) acts on the training slices with its schedules, and its crop and coil
    compression on the validation slices too (they change what the model sees). Mask duplication
    draws from `mask_bank` (a file `tuner masks build` wrote), else from the training files' own masks.
    """

    def __init__(self, root: Path, config: TrainConfig, augment: AugmentConfig | None = None,
                 mask_bank: str | Path | None = None) -> None:
        self.config = config
        augment = augment or AugmentConfig()
        train = open_split(root, "train")
        val = open_split(root, "val")
        require_one_shape(train.files, config.batch_size)
        self.augmenter: SliceAugmenter | None = None
        if _active(augment):
            bank = None
            if augment.duplication.enabled:
                bank = MaskBank.load(mask_bank) if mask_bank is not None else build_mask_bank(train.files)
            self.augmenter = SliceAugmenter(augment, seed=config.seed, train=True, mask_bank=bank)
            train = self.augmenter.wrap(train)
        prepare = eval_augmenter(augment)
        if prepare is not None:
            val = prepare.wrap(val)
        self.train = train
        if config.val_slices is not None and config.val_slices < len(val):
            keep = np.linspace(0, len(val) - 1, config.val_slices).round().astype(int)
            self.val: torch.utils.data.Dataset = Subset(val, sorted(set(keep.tolist())))
        else:
            self.val = val

    def augmentation_metrics(self) -> dict[str, float]:
        """This epoch's firing probability of each scheduled augmentation, as `aug_p_<name>` metrics."""
        if self.augmenter is None:
            return {}
        return {f"aug_p_{name}": p for name, p in self.augmenter.probabilities().items()}

    def largest_batch(self) -> Any:
        """The training set's largest slice, repeated to the batch size: the memory worst case of a step."""
        sample = self.train[self.train.largest_slice()]
        return default_collate([sample] * self.config.batch_size)

    def train_loader(self, epoch: int, val_losses: Sequence[float] = ()) -> DataLoader:
        """Epoch `epoch`'s (from 0) shuffled training batches; `val_losses` drive loss-driven schedules."""
        if self.augmenter is not None:
            # Set before the loader exists: its worker processes copy the augmenter when they start.
            self.augmenter.set_epoch(epoch, val_losses)
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        budget = self.config.train_slices_per_epoch
        sampler = RandomSampler(self.train, num_samples=min(budget, len(self.train)) if budget else None,
                                generator=generator)
        return DataLoader(self.train, batch_size=self.config.batch_size, sampler=sampler,
                          num_workers=self.config.num_workers)

    def val_loader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.config.batch_size, shuffle=False,
                          num_workers=self.config.num_workers)


def _active(augment: AugmentConfig) -> bool:
    return (augment.mask.enabled or augment.duplication.enabled or augment.mraugment.enabled
            or augment.compression.method != "none" or augment.crop.height is not None)


def eval_augmenter(augment: AugmentConfig) -> SliceAugmenter | None:
    """What validation and reconstruction do to a slice: the crop and coil compression, if configured."""
    if augment.compression.method == "none" and augment.crop.height is None:
        return None
    return SliceAugmenter(augment, train=False)


def require_one_shape(files: Sequence[Path], batch_size: int) -> None:
    """Batches stack slices, so batch_size > 1 needs one (coils, H, W) across the training files.

    Raises ConfigError naming the shapes found; does nothing for batch_size 1.
    """
    if batch_size <= 1:
        return
    shapes = set()
    for path in files:
        with h5py.File(path, "r") as f:
            shapes.add(tuple(f["kspace"].shape[1:]))
    if len(shapes) > 1:
        listed = ", ".join("x".join(map(str, s)) for s in sorted(shapes)[:4])
        raise ConfigError(f"train.batch_size: {batch_size} needs training slices of one shape, but they come in "
                          f"{len(shapes)} ({listed}{', ...' if len(shapes) > 4 else ''}); use batch_size 1 with "
                          f"train.grad_accumulation instead")
