"""The SNU FastMRI Challenge leaderboard SSIM, reproduced exactly, and its per-category bookkeeping.

Per slice: ROI = target > organ threshold, then a 3x3 erosion, 15 dilations and 14 erosions (OpenCV
semantics: pixels outside the image never erode or dilate anything); SSIM of recon*ROI against
target*ROI with a 7x7 uniform window, valid convolution, k1 0.01, k2 0.03, the file's `max` as data
range and the sample-covariance factor 49/48; the mean of the map. The score averages slices over all
files of one acceleration and then takes the mean of the acc4 and acc8 averages.

One torch implementation serves the training loss (float32, differentiable, any device) and the
reported metric (float64, on whatever device holds the images: validation scores on the model's
device), so what is optimised is what is scored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from data.category import Category

ROI_THRESHOLDS = {"brain": 5e-5, "knee": 2e-5}
SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03


def leaderboard_roi(target: torch.Tensor, organ: str) -> torch.Tensor:
    """Foreground ROI of one or more targets `(..., h, w)` as a same-shaped float tensor of 0/1."""
    if organ not in ROI_THRESHOLDS:
        raise ValueError(f"organ: expected one of {sorted(ROI_THRESHOLDS)}, got {organ!r}")
    shape = target.shape
    roi = (target > ROI_THRESHOLDS[organ]).to(target.dtype).reshape(-1, 1, *shape[-2:])
    roi = _erode(roi)
    for _ in range(15):
        roi = F.max_pool2d(roi, 3, stride=1, padding=1)
    for _ in range(14):
        roi = _erode(roi)
    return roi.reshape(shape)


def _erode(x: torch.Tensor) -> torch.Tensor:
    # max_pool2d pads with -inf, so outside pixels never win the min: OpenCV's default erosion border.
    return -F.max_pool2d(-x, 3, stride=1, padding=1)


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: torch.Tensor | float) -> torch.Tensor:
    """SSIM map of images `(B, h, w)` with the leaderboard's window and constants: `(B, h-6, w-6)`.

    `data_range` is a scalar or a `(B,)` tensor. Inputs are divided by it first, which leaves SSIM
    unchanged and keeps float32 well away from cancellation at MRI intensity scales (~1e-4).
    """
    data_range = torch.as_tensor(data_range, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    x = x.unsqueeze(1) / data_range
    y = y.unsqueeze(1) / data_range
    window = torch.full((1, 1, SSIM_WINDOW, SSIM_WINDOW), 1.0 / SSIM_WINDOW**2, dtype=x.dtype, device=x.device)
    n = SSIM_WINDOW**2
    cov_norm = n / (n - 1)
    ux, uy = F.conv2d(x, window), F.conv2d(y, window)
    vx = cov_norm * (F.conv2d(x * x, window) - ux * ux)
    vy = cov_norm * (F.conv2d(y * y, window) - uy * uy)
    vxy = cov_norm * (F.conv2d(x * y, window) - ux * uy)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return ssim.squeeze(1)


def leaderboard_ssim(recon: np.ndarray, target: np.ndarray, max_value: float, organ: str) -> float:
    """The challenge's SSIM of one 2-D reconstruction against its 2-D target (same shape), on the CPU."""
    if recon.shape != target.shape or recon.ndim != 2:
        raise ValueError(f"recon and target must be equal 2-D shapes, got {recon.shape} and {target.shape}")
    recon_t = torch.from_numpy(np.asarray(recon, dtype=np.float64))
    target_t = torch.from_numpy(np.asarray(target, dtype=np.float64))
    roi = leaderboard_roi(target_t, organ)
    return float(ssim_map((recon_t * roi)[None], (target_t * roi)[None], float(max_value)).mean())


def leaderboard_ssim_batch(recon: torch.Tensor, target: torch.Tensor, max_values: torch.Tensor,
                           organs: Sequence[str]) -> torch.Tensor:
    """`leaderboard_ssim` of each slice of a batch, in float64 on the batch's device: `(B, h, w)` -> `(B,)`.

    `max_values` is `(B,)`, `organs` one organ per slice. Validation scores with this, so slices
    never leave the card to be scored.
    """
    if recon.shape != target.shape or recon.ndim != 3:
        raise ValueError(f"recon and target must be equal (B, h, w) shapes, got {tuple(recon.shape)} and "
                         f"{tuple(target.shape)}")
    recon, target = recon.double(), target.double()
    roi = torch.stack([leaderboard_roi(t, organ) for t, organ in zip(target, organs, strict=True)])
    return ssim_map(recon * roi, target * roi, max_values.to(target)).mean(dim=(-2, -1))


@dataclass
class SSIMSummary:
    """Mean SSIM per category ("brain_x4", ...), per acceleration (4, 8) and the leaderboard score."""

    per_category: dict[str, float]
    per_acceleration: dict[int, float]
    overall: float
    slices: int


class SSIMAccumulator:
    """Collects per-slice SSIMs and averages them the way the leaderboard does."""

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = defaultdict(list)

    def add(self, category: str, value: float) -> None:
        Category.parse(category)  # a ValueError now rather than in summary()
        self._values[category].append(float(value))

    def summary(self) -> SSIMSummary:
        if not self._values:
            raise ValueError("no slices were scored")
        by_acc: dict[int, list[float]] = defaultdict(list)
        for category, values in self._values.items():
            by_acc[Category.parse(category).acceleration].extend(values)
        per_acc = {acc: float(np.mean(v)) for acc, v in sorted(by_acc.items())}
        return SSIMSummary(
            per_category={c: float(np.mean(v)) for c, v in sorted(self._values.items())},
            per_acceleration=per_acc,
            overall=float(np.mean(list(per_acc.values()))),
            slices=sum(len(v) for v in self._values.values()),
        )
