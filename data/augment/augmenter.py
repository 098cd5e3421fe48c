"""The composed slice augmenter, and the dataset view that duplicates slices per acceleration."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..snu import SNUSliceDataset, VarNetSample
from . import _checks
from .bank import DuplicatedIndex, MaskBank, split_category
from .coils import compress_coils, crop_readout
from .config import AugmentConfig
from .image import augment_slice, draw_image_transform
from .mask_aug import draw_family_mask, require_fully_sampled

# One random stream per augmenter, so switching one on or off never changes another's draws.
_DUPLICATION, _MASK, _IMAGE = 0, 1, 2

SliceFields = tuple[np.ndarray, np.ndarray, np.ndarray, float, str]


class SliceAugmenter:
    """Applies an :class:`AugmentConfig` to raw slices; usable as ``SNUSliceDataset(transform=...)``.

    Order, fixed (each step only when configured; steps 1, 2 and 4 only when ``train``, so an
    evaluation augmenter, ``train=False``, only crops and compresses):

    1. duplication: the copy's acceleration sets the category ("brain_x8") and, unless it is the
       file's own acceleration with ``keep_own_mask``, a mask drawn from the bank;
    2. mask augmentation: with its scheduled probability a fastMRI-family mask at the (possibly
       duplicated) acceleration;
    3. readout crop, before 4 and 5 so that they work on fewer rows;
    4. MRAugment on the coil images (k-space, target and max recomputed), with all coils;
    5. coil compression, calibrated on the final mask's columns (as at test time), last so that
       step 4's target is the RSS of every physical coil. The target is otherwise left as it is.

    Steps 1, 2 and 4 need fully sampled k-space and raise a :class:`DataFormatError` otherwise.

    Randomness is a pure function of (seed, epoch, slice key, duplicated acceleration): the same
    sample repeats across runs and DataLoader workers. The epoch is state: the training loop calls
    :meth:`set_epoch` before building each epoch's DataLoader iterator (workers receive a copy of the
    dataset, hence of this object, when an iterator starts, so do not use ``persistent_workers``).
    """

    def __init__(
        self,
        config: AugmentConfig | None = None,
        *,
        seed: int = 0,
        train: bool = True,
        mask_bank: MaskBank | None = None,
    ):
        config = AugmentConfig() if config is None else config
        if not isinstance(config, AugmentConfig):
            raise ValueError(f"config: expected an AugmentConfig, got {config!r}")
        self.config = config
        self.seed = _checks.integer("seed", seed, 0)
        self.train = _checks.flag("train", train)
        self.mask_bank = MaskBank() if mask_bank is None else mask_bank
        self.epoch = 0
        self.val_losses: tuple[float, ...] = ()

    def set_epoch(self, epoch: int, val_losses: Sequence[float] = ()) -> None:
        """The epoch about to be trained (from 0) and the validation losses of the epochs before it."""
        self.epoch = _checks.integer("epoch", epoch, 0)
        self.val_losses = tuple(float(v) for v in val_losses)

    def probabilities(self) -> dict[str, float]:
        """The current epoch's firing probability of each scheduled augmenter (0 when off), for logging."""
        cfg = self.config
        return {
            name: part.schedule.probability(self.epoch, self.val_losses) if part.enabled and self.train else 0.0
            for name, part in (("mask", cfg.mask), ("mraugment", cfg.mraugment))
        }

    def __call__(
        self, kspace: np.ndarray, mask: np.ndarray, target: np.ndarray, max_value: float, category: str, index: int
    ) -> SliceFields:
        """The ``SNUSliceDataset`` transform hook: :meth:`apply` at the current epoch, keyed by ``index``."""
        return self.apply(kspace, mask, target, max_value, category, epoch=self.epoch, slice_key=index,
                          val_losses=self.val_losses)

    def apply(
        self,
        kspace: np.ndarray,
        mask: np.ndarray,
        target: np.ndarray,
        max_value: float,
        category: str,
        *,
        epoch: int,
        slice_key: int,
        val_losses: Sequence[float] = (),
        acceleration: int | None = None,
    ) -> SliceFields:
        """Augment one slice: kspace (C, H, W) complex, fully sampled; mask (W,) bool; target (h, w).

        Returns (kspace (C', H', W) complex64, mask (W,) bool, target (h, w) float32, max_value,
        category), with C' and H' changed only by compression and crop. ``acceleration`` is the
        duplicated copy's (None: not duplicated); ``slice_key`` identifies the slice for seeding.
        """
        cfg = self.config
        organ, own_acceleration = split_category(category)
        mask = np.asarray(mask, dtype=bool)
        duplicated = self.train and acceleration is not None
        mask_aug = self.train and cfg.mask.enabled
        if duplicated or mask_aug or (self.train and cfg.mraugment.enabled):
            require_fully_sampled(kspace, f"{category} slice {slice_key}: augmentation")
        if duplicated:
            category = f"{organ}_x{acceleration}"
            if acceleration != own_acceleration or not cfg.duplication.keep_own_mask:
                rng = self._rng(epoch, slice_key, acceleration, _DUPLICATION)
                mask = self.mask_bank.draw(organ, acceleration, kspace.shape[-1], rng)
        if mask_aug:
            rng = self._rng(epoch, slice_key, acceleration, _MASK)
            if rng.uniform() < cfg.mask.schedule.probability(epoch, val_losses):
                mask = draw_family_mask(cfg.mask, kspace.shape[-1], acceleration or own_acceleration, rng)
        if cfg.crop.height is not None and kspace.shape[-2] > cfg.crop.height:
            kspace = self._crop(kspace, target.shape[0])
        if self.train and cfg.mraugment.enabled:
            rng = self._rng(epoch, slice_key, acceleration, _IMAGE)
            if rng.uniform() < cfg.mraugment.schedule.probability(epoch, val_losses):
                transform = draw_image_transform(cfg.mraugment, rng, kspace.shape[-2:])
                if not transform.is_identity:
                    kspace, target, max_value = augment_slice(
                        kspace, target, max_value, transform, cfg.mraugment.padding
                    )
        if cfg.compression.method != "none":
            comp = cfg.compression
            num_virtual = min(comp.num_virtual_coils, kspace.shape[0])
            kspace = compress_coils(kspace, comp.method, num_virtual, mask, comp.gcc_window)
        return kspace.astype(np.complex64, copy=False), mask, target, max_value, category

    def _rng(self, epoch: int, slice_key: int, acceleration: int | None, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, slice_key, acceleration or 0, stream])

    def _crop(self, kspace: np.ndarray, target_height: int) -> np.ndarray:
        height = self.config.crop.height
        if height < target_height:
            raise ValueError(f"crop.height: {height} rows cannot hold the {target_height}-row target")
        # Chosen so that centre-cropping the cropped image to the target picks the original target rows
        # (plain centre crops of centre crops can be one row off when the size parities differ).
        rows = kspace.shape[-2]
        start = (rows - target_height) // 2 - (height - target_height) // 2
        return crop_readout(kspace, height, start)

    def wrap(self, dataset: SNUSliceDataset) -> Dataset:
        """A view of ``dataset`` with this augmenter as its transform (``dataset`` itself is unchanged).

        Training with duplication on gives a :class:`DuplicatedSlices` of twice the length.
        """
        if self.train and self.config.duplication.enabled:
            return DuplicatedSlices(dataset, self)
        view = copy.copy(dataset)
        view.transform = self
        return view


class _AtAcceleration:
    """The transform of one duplicated copy: the augmenter with a fixed acceleration."""

    def __init__(self, augmenter: SliceAugmenter, acceleration: int):
        self.augmenter = augmenter
        self.acceleration = acceleration

    def __call__(
        self, kspace: np.ndarray, mask: np.ndarray, target: np.ndarray, max_value: float, category: str, index: int
    ) -> SliceFields:
        aug = self.augmenter
        return aug.apply(kspace, mask, target, max_value, category, epoch=aug.epoch, slice_key=index,
                         val_losses=aug.val_losses, acceleration=self.acceleration)


class DuplicatedSlices(Dataset):
    """Every slice of an SNU dataset once per acceleration (4 and 8), items ordered as :class:`DuplicatedIndex`.

    Item i is slice ``index[i][0]`` of ``dataset`` seen at acceleration ``index[i][1]``: its mask
    comes from the augmenter's bank (or is the file's own, see ``keep_own_mask``), its category,
    hence its metric bucket, names that acceleration, and mask augmentation uses it too.
    """

    def __init__(self, dataset: SNUSliceDataset, augmenter: SliceAugmenter):
        if not augmenter.train:
            raise ValueError("augmenter: duplication is for training; this augmenter has train=False")
        self.index = DuplicatedIndex(len(dataset))
        self._base = dataset
        self._copies: dict[int, SNUSliceDataset] = {}
        for acceleration in self.index.accelerations:
            view = copy.copy(dataset)
            view.transform = _AtAcceleration(augmenter, acceleration)
            self._copies[acceleration] = view

    @property
    def files(self) -> list[Path]:
        """The k-space files, in the underlying dataset's order."""
        return self._base.files

    @property
    def categories(self) -> list[str]:
        """The (duplicated) category of every item."""
        base = self._base.categories
        return [f"{split_category(base[s])[0]}_x{acc}" for s, acc in (self.index[i] for i in range(len(self)))]

    def largest_slice(self) -> int:
        """An item of the largest slice shape (the first copy's), for memory probes."""
        return self._base.largest_slice()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> VarNetSample:
        slice_index, acceleration = self.index[i]
        return self._copies[acceleration][slice_index]
