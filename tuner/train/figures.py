"""Pictures of a model's reconstructions: one fixed validation slice per category, as PNGs for the tracking UI.

A trial draws them at each epoch that is a new best and at its last epoch, so its MLflow run always
shows the model it would be judged by. Each figure is one row of four panels of the same slice:
the target, the reconstruction, the zero-filled input (what the network started from) and the
absolute error inside the leaderboard ROI, with both SSIMs in the titles. The slice is fixed for
the whole search (the middle one of each category in the validation set), so figures of different
trials and epochs can be compared side by side.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch.utils.data import Dataset, Subset, default_collate

from data.batch import ModelBatch
from data.snu import VarNetSample
from data.transforms import crop_or_pad, ifft2c, rss
from tuner.train.engine import Trainer, autocast
from tuner.train.metrics import leaderboard_roi, leaderboard_ssim_batch

FIGURES_DIR = "images"  # in a run's artifacts: images/<category>.png
FIGURE_SIZE = (12.0, 3.5)  # inches: four square-ish panels in a row
FIGURE_DPI = 100
ERROR_SCALE = 0.2  # the error map's colour range, as a share of the target's maximum


@dataclass(frozen=True)
class SliceImages:
    """One slice's images, all `(h, w)` float arrays in the target's units; `roi` is 0/1."""

    category: str
    fname: str
    slice_idx: int
    target: np.ndarray
    recon: np.ndarray
    zero_filled: np.ndarray
    roi: np.ndarray
    ssim: float
    zero_filled_ssim: float


def showcase_slices(dataset: Dataset) -> dict[str, int]:
    """Category -> index in `dataset` (an `SNUSliceDataset` or a `Subset` of one) of its middle slice."""
    if isinstance(dataset, Subset):
        categories = [dataset.dataset.categories[i] for i in dataset.indices]
    else:
        categories = dataset.categories
    by_category: dict[str, list[int]] = {}
    for index, category in enumerate(categories):
        by_category.setdefault(category, []).append(index)
    return {category: indices[len(indices) // 2] for category, indices in sorted(by_category.items())}


def zero_filled(batch: ModelBatch) -> torch.Tensor:
    """RSS of the inverse FFT of the masked k-space, cropped to the target: `(B, h, w)`."""
    images = rss(ifft2c(torch.view_as_complex(batch.masked_kspace.float().contiguous())), axis=1)
    return crop_or_pad(images, tuple(batch.target.shape[-2:]))


@torch.no_grad()
def reconstruct_slice(trainer: Trainer, sample: VarNetSample) -> SliceImages:
    """Run `trainer`'s model on one validation sample and score it and its zero-filled input."""
    trainer.model.eval()
    batch = trainer.prepare_eval(default_collate([sample]), trainer.device)
    with autocast(trainer.device, trainer.autocast_dtype):
        recon = trainer.forward(batch).float()
    baseline = zero_filled(batch)
    organs = batch.organs
    scores = leaderboard_ssim_batch(torch.cat([recon, baseline]), torch.cat([batch.target, batch.target]),
                                    torch.cat([batch.max_value, batch.max_value]), organs * 2)
    roi = leaderboard_roi(batch.target[0].double(), organs[0])
    return SliceImages(
        category=batch.category[0], fname=batch.fname[0], slice_idx=int(batch.slice_idx[0]),
        target=batch.target[0].cpu().numpy(), recon=recon[0].cpu().numpy(), zero_filled=baseline[0].cpu().numpy(),
        roi=roi.cpu().numpy(), ssim=float(scores[0]), zero_filled_ssim=float(scores[1]),
    )


def slice_figure_png(images: SliceImages, heading: str) -> bytes:
    """The four-panel PNG of `images` (FIGURE_SIZE x FIGURE_DPI pixels) with `heading` above it."""
    figure = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    top = float(images.target.max()) or 1.0
    error = np.abs(images.recon - images.target) * images.roi
    panels = (
        ("target", images.target, "gray", top),
        (f"reconstruction  SSIM {images.ssim:.4f}", images.recon, "gray", top),
        (f"zero-filled  SSIM {images.zero_filled_ssim:.4f}", images.zero_filled, "gray", top),
        (f"|error| in ROI (0 to {ERROR_SCALE:g} x max)", error, "inferno", ERROR_SCALE * top),
    )
    axes = figure.subplots(1, len(panels))
    for ax, (title, image, colormap, vmax) in zip(axes, panels, strict=True):
        ax.imshow(image, cmap=colormap, vmin=0.0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    figure.suptitle(heading, fontsize=10)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.84, wspace=0.04)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
