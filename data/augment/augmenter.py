"""The slice augmenter of the training loader, and the dataset view that duplicates slices per acceleration."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from data import validation as check

from ..category import Category
from ..snu import RawSlice, SNUSliceDataset, VarNetSample
from .bank import DuplicatedIndex, MaskBank
from .config import AugmentConfig
from .image import draw_image_transform
from .mask_aug import draw_family_mask, require_fully_sampled

# One random stream per augmenter, so switching one on or off never changes another's draws.
_DUPLICATION, _MASK, _IMAGE = 0, 1, 2


class SliceAugmenter:
    """The per-slice random choices of an :class:`AugmentConfig`; usable as ``SNUSliceDataset(transform=...)``.

    It runs in the data loader and only decides; what costs arithmetic on whole slices (the readout
    crop, MRAugment's resampling, coil compression, masking) runs where the batch meets the model,
    on its device (``data.batch.BatchPreparation``). In order, each step only when configured:

    1. duplication: the copy's acceleration sets the category ("brain_x8") and, unless it is the
       file's own acceleration with ``keep_own_mask``, a mask drawn from the bank;
    2. mask augmentation: with its scheduled probability a fastMRI-family mask at the (possibly
       duplicated) acceleration;
    3. MRAugment: with its scheduled probability, one draw of the geometric transform, carried in
       the slice's ``image_transform`` for the device to apply.

    All three need fully sampled k-space and raise a :class:`DataFormatError` otherwise.

    Randomness is a pure function of (seed, epoch, slice key, duplicated acceleration): the same
    sample repeats across runs and DataLoader workers. The epoch is state, set with :meth:`set_epoch`
    in whichever process (or worker) draws the slice.
    """

    def __init__(self, config: AugmentConfig | None = None, *, seed: int = 0, mask_bank: MaskBank | None = None):
        config = AugmentConfig() if config is None else config
        if not isinstance(config, AugmentConfig):
            raise ValueError(f"config: expected an AugmentConfig, got {config!r}")
        self.config = config
        self.seed = check.integer("seed", seed, 0)
        self.mask_bank = MaskBank() if mask_bank is None else mask_bank
        self.epoch = 0
        self.val_losses: tuple[float, ...] = ()

    @property
    def active(self) -> bool:
        """Whether the configuration asks this augmenter for anything at all."""
        cfg = self.config
        return cfg.mask.enabled or cfg.duplication.enabled or cfg.mraugment.enabled

    def set_epoch(self, epoch: int, val_losses: Sequence[float] = ()) -> None:
        """The epoch about to be trained (from 0) and the validation losses of the epochs before it."""
        self.epoch = check.integer("epoch", epoch, 0)
        self.val_losses = tuple(float(v) for v in val_losses)

    def probabilities(self) -> dict[str, float]:
        """The current epoch's firing probability of each scheduled augmenter (0 when off), for logging."""
        cfg = self.config
        return {
            name: part.schedule.probability(self.epoch, self.val_losses) if part.enabled else 0.0
            for name, part in (("mask", cfg.mask), ("mraugment", cfg.mraugment))
        }

    def __call__(self, raw: RawSlice, index: int) -> RawSlice:
        """The ``SNUSliceDataset`` transform hook: :meth:`apply` at the current epoch, keyed by ``index``."""
        return self.apply(raw, epoch=self.epoch, slice_key=index, val_losses=self.val_losses)

    def apply(
        self,
        raw: RawSlice,
        *,
        epoch: int,
        slice_key: int,
        val_losses: Sequence[float] = (),
        acceleration: int | None = None,
    ) -> RawSlice:
        """The slice with its augmented mask, category and drawn image transform; k-space and target as given.

        ``acceleration`` is the duplicated copy's (None: not duplicated); ``slice_key`` identifies the
        slice for seeding.
        """
        cfg = self.config
        organ, own_acceleration = Category.parse(raw.category)
        mask, category, image_transform = np.asarray(raw.mask, dtype=bool), raw.category, raw.image_transform
        duplicated = acceleration is not None
        if duplicated or cfg.mask.enabled or cfg.mraugment.enabled:
            require_fully_sampled(raw.kspace, f"{raw.category} slice {slice_key}: augmentation")
        if duplicated:
            category = str(Category(organ, acceleration))
            if acceleration != own_acceleration or not cfg.duplication.keep_own_mask:
                rng = self._rng(epoch, slice_key, acceleration, _DUPLICATION)
                mask = self.mask_bank.draw(organ, acceleration, raw.kspace.shape[-1], rng)
        if cfg.mask.enabled:
            rng = self._rng(epoch, slice_key, acceleration, _MASK)
            if rng.uniform() < cfg.mask.schedule.probability(epoch, val_losses):
                mask = draw_family_mask(cfg.mask, raw.kspace.shape[-1], acceleration or own_acceleration, rng)
        if cfg.mraugment.enabled:
            rng = self._rng(epoch, slice_key, acceleration, _IMAGE)
            if rng.uniform() < cfg.mraugment.schedule.probability(epoch, val_losses):
                image_transform = draw_image_transform(cfg.mraugment, rng, raw.kspace.shape[-2:]).to_vector()
        return raw._replace(mask=mask, category=category, image_transform=image_transform)

    def _rng(self, epoch: int, slice_key: int, acceleration: int | None, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, slice_key, acceleration or 0, stream])

    def wrap(self, dataset: SNUSliceDataset) -> Dataset:
        """A view of ``dataset`` with this augmenter as its transform (``dataset`` itself is unchanged).

        With duplication on it is a :class:`DuplicatedSlices` of twice the length.
        """
        if self.config.duplication.enabled:
            return DuplicatedSlices(dataset, self)
        view = copy.copy(dataset)
        view.transform = self
        return view


class _AtAcceleration:
    """The transform of one duplicated copy: the augmenter with a fixed acceleration."""

    def __init__(self, augmenter: SliceAugmenter, acceleration: int):
        self.augmenter = augmenter
        self.acceleration = acceleration

    def __call__(self, raw: RawSlice, index: int) -> RawSlice:
        aug = self.augmenter
        return aug.apply(raw, epoch=aug.epoch, slice_key=index, val_losses=aug.val_losses,
                         acceleration=self.acceleration)


class DuplicatedSlices(Dataset):
    """Every slice of an SNU dataset once per acceleration (4 and 8), items ordered as :class:`DuplicatedIndex`.

    Item i is slice ``index[i][0]`` of ``dataset`` seen at acceleration ``index[i][1]``: its mask
    comes from the augmenter's bank (or is the file's own, see ``keep_own_mask``), its category,
    hence its metric bucket, names that acceleration, and mask augmentation uses it too.
    """

    def __init__(self, dataset: SNUSliceDataset, augmenter: SliceAugmenter):
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
        base = [Category.parse(category) for category in self._base.categories]
        return [str(base[s]._replace(acceleration=acc)) for s, acc in (self.index[i] for i in range(len(self)))]

    def largest_slice(self) -> int:
        """An item of the largest slice shape (the first copy's), for memory probes."""
        return self._base.largest_slice()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> VarNetSample:
        slice_index, acceleration = self.index[i]
        return self._copies[acceleration][slice_index]
