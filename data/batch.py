"""Where a batch of slices meets the model: on the model's device, augment what needs whole slices, then mask.

A loader yields collated :class:`~data.snu.VarNetSample` batches with k-space as stored and the random
choices already made (``data.augment.SliceAugmenter``). :class:`BatchPreparation` moves a batch to the
model's device and does there, per slice, in this order (each step only when configured):

1. the readout crop (``augment.crop``), so the later steps work on fewer rows;
2. MRAugment (training only): the slice's drawn ``image_transform`` on its coil images, the target
   and its data range recomputed;
3. coil compression (``augment.compression``), calibrated on the mask's columns as at test time;
4. the mask.

Steps 1 and 3 change what the model sees, so validation and reconstruction do them too. The crop,
compression and mask act on each phase-encode column on its own, so they commute with masking, and
k-space that is already undersampled (test data) is prepared exactly as fully sampled k-space is.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from .augment.coils import compress_coils, crop_readout
from .augment.config import AugmentConfig
from .augment.image import ImageTransform, augment_slice
from .category import Category
from .snu import VarNetSample


class ModelBatch(NamedTuple):
    """A batch ready for a VarNet, on its device."""

    masked_kspace: torch.Tensor  # (B, C, H, W, 2) float32
    mask: torch.Tensor  # (B, 1, 1, W, 1) bool
    target: torch.Tensor  # (B, h, w) float32
    max_value: torch.Tensor  # (B,) float32: the SSIM data range of each slice
    category: Sequence[str]  # ("brain_x4", ...) per slice
    fname: Sequence[str]
    slice_idx: torch.Tensor  # (B,)

    @property
    def organs(self) -> list[str]:
        return [Category.parse(category).organ for category in self.category]


class BatchPreparation:
    """Turns a collated batch into a :class:`ModelBatch` on a device; ``train`` turns MRAugment on."""

    def __init__(self, config: AugmentConfig | None = None, *, train: bool) -> None:
        self.config = config or AugmentConfig()
        self.train = train

    @property
    def per_slice(self) -> bool:
        """Whether any step beyond masking is configured (else a batch is prepared as a whole)."""
        cfg = self.config
        return (cfg.crop.height is not None or cfg.compression.method != "none"
                or (self.train and cfg.mraugment.enabled))

    def __call__(self, batch: VarNetSample, device: torch.device) -> ModelBatch:
        non_blocking = device.type == "cuda"
        kspace = batch.kspace.to(device, non_blocking=non_blocking)
        mask = batch.mask.to(device, non_blocking=non_blocking)
        target = batch.target.to(device, non_blocking=non_blocking)
        max_value = torch.as_tensor(batch.max_value, dtype=torch.float32).to(device, non_blocking=non_blocking)
        if self.per_slice:
            slices = [self.prepare_slice(torch.view_as_complex(kspace[i]), mask[i].reshape(-1), target[i],
                                         max_value[i], batch.image_transform[i]) for i in range(len(kspace))]
            kspace = torch.stack([torch.view_as_real(k) for k, _, _ in slices])
            target = torch.stack([t for _, t, _ in slices])
            max_value = torch.stack([m for _, _, m in slices])
        return ModelBatch(kspace * mask, mask, target, max_value, batch.category, batch.fname, batch.slice_idx)

    def prepare_slice(self, kspace: torch.Tensor, columns: torch.Tensor, target: torch.Tensor,
                      max_value: torch.Tensor, image_transform: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Steps 1-3 for one slice: complex k-space (C, H, W), mask columns (W,) bool, target (h, w),
        data range (0-d) and encoded transform (on the CPU) -> (k-space (C', H', W), target, data range)."""
        cfg = self.config
        if cfg.crop.height is not None and kspace.shape[-2] > cfg.crop.height:
            kspace = crop_readout(kspace, cfg.crop.height, readout_crop_start(kspace.shape[-2], cfg.crop.height,
                                                                              target.shape[-2]))
        if self.train and cfg.mraugment.enabled:
            transform = ImageTransform.from_vector(image_transform.tolist())
            if not transform.is_identity:
                kspace, target, max_value = augment_slice(kspace, target, max_value, transform,
                                                          cfg.mraugment.padding)
        if cfg.compression.method != "none":
            comp = cfg.compression
            kspace = compress_coils(kspace, comp.method, min(comp.num_virtual_coils, kspace.shape[0]), columns,
                                    comp.gcc_window)
        return kspace.to(torch.complex64), target, max_value


def readout_crop_start(rows: int, height: int, target_height: int) -> int:
    """The first row of a `height`-row readout crop of `rows` rows whose centre crop is the target's rows.

    Plain centre crops of centre crops can be one row off when the size parities differ.
    """
    if height < target_height:
        raise ValueError(f"crop.height: {height} rows cannot hold the {target_height}-row target")
    return (rows - target_height) // 2 - (height - target_height) // 2
