"""Data loaders for one data root: seeded per-epoch order, per-epoch slice budgets, workers that suit the device."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, Subset, default_collate

from data.augment import AugmentConfig, ImageTransform, MaskBank, SliceAugmenter, build_mask_bank
from data.layout import open_split
from data.snu import VarNetSample
from tuner.config.trial import ConfigError, TrainConfig

# What the memory probe resamples when MRAugment is on: any transform that needs interpolation costs the same.
PROBE_IMAGE_TRANSFORM = ImageTransform(rotation_deg=30.0, scale=1.1)


class TrialData:
    """The training and validation sets of a data root (SNU or fastMRI layout), as loaders for an epoch.

    Shuffling is seeded by (seed, epoch), so a resumed trial sees the same order it would have seen.
    `train_slices_per_epoch` draws that many slices per epoch; `val_slices` keeps a fixed, evenly spread
    subset of the validation set so every epoch and every trial is scored on the same slices.

    `augment`'s random choices (`data.augment.SliceAugmenter`) are made for the training slices in the
    loader; the arithmetic on whole slices happens on the model's device (`data.batch`). Mask
    duplication draws from `mask_bank` (a file `tuner masks build` wrote), else from the training
    files' own masks.

    On a CUDA `device` the loaders read in `loader_workers` processes (kept alive across epochs) into
    pinned memory; on the CPU they read in the training process, which leaves every core to the model.
    """

    def __init__(self, root: Path, config: TrainConfig, augment: AugmentConfig | None = None,
                 mask_bank: str | Path | None = None, device: torch.device = torch.device("cpu"),
                 cpus: int | None = None) -> None:
        self.config = config
        self.device = device
        self.augment = augment or AugmentConfig()
        train = open_split(root, "train")
        val = open_split(root, "val")
        require_one_shape(train.files, config.batch_size)
        bank = None
        if self.augment.duplication.enabled:
            bank = MaskBank.load(mask_bank) if mask_bank is not None else build_mask_bank(train.files)
        augmenter = SliceAugmenter(self.augment, seed=config.seed, mask_bank=bank)
        self.augmenter = augmenter if augmenter.active else None
        if self.augmenter is not None:
            train = self.augmenter.wrap(train)
        self.train = train
        if config.val_slices is not None and config.val_slices < len(val):
            keep = np.linspace(0, len(val) - 1, config.val_slices).round().astype(int)
            self.val: Dataset = Subset(val, sorted(set(keep.tolist())))
        else:
            self.val = val
        self.workers = loader_workers(config.num_workers, device, cpus)
        self._sampler = EpochSampler(len(self.train), config.train_slices_per_epoch, config.seed)
        self._train_loader = self._loader(EpochKeyed(self.train, self.augmenter), self._sampler, device)
        self._val_loader = self._loader(self.val, None, device)

    @property
    def slices_per_epoch(self) -> int:
        """Training items an epoch draws (`train_slices_per_epoch`, or the whole set)."""
        return len(self._sampler)

    def augmentation_metrics(self) -> dict[str, float]:
        """This epoch's firing probability of each scheduled augmentation, as `aug_p_<name>` metrics."""
        if self.augmenter is None:
            return {}
        return {f"aug_p_{name}": p for name, p in self.augmenter.probabilities().items()}

    def largest_batch(self) -> VarNetSample:
        """The training set's largest slice, repeated to the batch size: the memory worst case of a step.

        With MRAugment configured the slice carries a transform that needs interpolation, so the
        probe pays for the resampling whether or not this slice's own draw would have fired.
        """
        sample = self.train[self.train.largest_slice()]
        if self.augment.mraugment.enabled:
            sample = sample._replace(image_transform=torch.as_tensor(PROBE_IMAGE_TRANSFORM.to_vector()))
        return default_collate([sample] * self.config.batch_size)

    def train_loader(self, epoch: int, val_losses: Sequence[float] = ()) -> DataLoader:
        """Epoch `epoch`'s (from 0) shuffled training batches; `val_losses` drive loss-driven schedules."""
        if self.augmenter is not None:
            self.augmenter.set_epoch(epoch, val_losses)  # for `augmentation_metrics`; workers get it per item
        self._sampler.set_epoch(epoch, val_losses)
        return self._train_loader

    def val_loader(self) -> DataLoader:
        return self._val_loader

    def _loader(self, dataset: Dataset, sampler: Sampler | None, device: torch.device) -> DataLoader:
        return DataLoader(dataset, batch_size=self.config.batch_size, sampler=sampler, shuffle=False,
                          num_workers=self.workers, pin_memory=device.type == "cuda",
                          persistent_workers=self.workers > 0)


def loader_workers(setting: int | str, device: torch.device, cpus: int | None = None) -> int:
    """Worker processes for `train.num_workers` on `device`, given the CPUs the trial may use.

    "auto": none on the CPU, where loading in the training process measured faster (every core
    already trains the model); on a card, all of the trial's CPUs but the one that drives the card.
    """
    if setting != "auto":
        return int(setting)
    if device.type != "cuda":
        return 0
    available = cpus if cpus is not None else len(os.sched_getaffinity(0))
    return max(available - 1, 0)


class EpochKey(NamedTuple):
    """A training item as the sampler names it: the slice and the epoch state its augmentation draws with."""

    index: int
    epoch: int
    val_losses: tuple[float, ...]


class EpochSampler(Sampler[EpochKey]):
    """Each epoch's seeded order of the training set (`budget` slices of it, if set), as `EpochKey`s.

    Loader workers hold copies of the dataset made when they started, and persistent workers keep
    them across epochs; the epoch travels with every key instead, so a worker draws as the training
    process would.
    """

    def __init__(self, size: int, budget: int | None, seed: int) -> None:
        self.size = size
        self.num_samples = min(budget, size) if budget else size
        self.seed = seed
        self.epoch = 0
        self.val_losses: tuple[float, ...] = ()

    def set_epoch(self, epoch: int, val_losses: Sequence[float] = ()) -> None:
        self.epoch = epoch
        self.val_losses = tuple(float(v) for v in val_losses)

    def __iter__(self) -> Iterator[EpochKey]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = RandomSampler(range(self.size), num_samples=self.num_samples, generator=generator)
        return (EpochKey(i, self.epoch, self.val_losses) for i in order)

    def __len__(self) -> int:
        return self.num_samples


class EpochKeyed(Dataset):
    """`dataset` indexed by `EpochKey`: sets the augmenter's epoch (in whichever process reads) first."""

    def __init__(self, dataset: Dataset, augmenter: SliceAugmenter | None) -> None:
        self.dataset = dataset
        self.augmenter = augmenter

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: EpochKey) -> VarNetSample:
        if self.augmenter is not None:
            self.augmenter.set_epoch(key.epoch, key.val_losses)
        return self.dataset[key.index]


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
