"""Data loaders for one data root: seeded per-epoch shuffling and optional per-epoch slice budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, Subset, default_collate

from data.snu import SNUSliceDataset
from tuner.config import TrainConfig


class TrialData:
    """The training and validation sets of an SNU-layout root, as loaders for a given epoch.

    Shuffling is seeded by (seed, epoch), so a resumed trial sees the same order it would have seen.
    `train_slices_per_epoch` draws that many slices per epoch; `val_slices` keeps a fixed, evenly spread
    subset of the validation set so every epoch and every trial is scored on the same slices.
    """

    def __init__(self, root: Path, config: TrainConfig) -> None:
        self.config = config
        self.train = SNUSliceDataset(root, "train")
        val = SNUSliceDataset(root, "val")
        if config.val_slices is not None and config.val_slices < len(val):
            keep = np.linspace(0, len(val) - 1, config.val_slices).round().astype(int)
            self.val: torch.utils.data.Dataset = Subset(val, sorted(set(keep.tolist())))
        else:
            self.val = val

    def largest_batch(self) -> Any:
        """The training set's largest slice, repeated to the batch size: the memory worst case of a step."""
        sample = self.train[self.train.largest_slice()]
        return default_collate([sample] * self.config.batch_size)

    def train_loader(self, epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        budget = self.config.train_slices_per_epoch
        sampler = RandomSampler(self.train, num_samples=min(budget, len(self.train)) if budget else None,
                                generator=generator)
        return DataLoader(self.train, batch_size=self.config.batch_size, sampler=sampler,
                          num_workers=self.config.num_workers)

    def val_loader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.config.batch_size, shuffle=False,
                          num_workers=self.config.num_workers)
