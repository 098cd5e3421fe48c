"""Training loss: w_ssim * (1 - leaderboard SSIM) + w_l1 * L1 / max, both inside the leaderboard ROI."""

from __future__ import annotations

from typing import Sequence

import torch

from tuner.train.metrics import leaderboard_roi, ssim_map


class LeaderboardLoss(torch.nn.Module):
    """The leaderboard's own SSIM, made a loss, plus an L1 term scaled by each slice's data range.

    Call with outputs and targets `(B, h, w)` (same size), `max_values` `(B,)` and one organ per slice.
    The ROI depends only on the target, so it carries no gradient.
    """

    def __init__(self, ssim_weight: float = 1.0, l1_weight: float = 1.0) -> None:
        super().__init__()
        self.ssim_weight = ssim_weight
        self.l1_weight = l1_weight

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, max_values: torch.Tensor, organs: Sequence[str]
    ) -> torch.Tensor:
        output = output.float()
        with torch.no_grad():
            roi = torch.stack([leaderboard_roi(t, organ) for t, organ in zip(target, organs, strict=True)])
        max_values = max_values.to(output)
        loss = output.new_zeros(())
        if self.ssim_weight:
            ssim = ssim_map(output * roi, target * roi, max_values).mean(dim=(-2, -1))
            loss = loss + self.ssim_weight * (1 - ssim).mean()
        if self.l1_weight:
            l1 = ((output - target).abs() * roi).sum(dim=(-2, -1)) / roi.sum(dim=(-2, -1)).clamp_min(1)
            loss = loss + self.l1_weight * (l1 / max_values).mean()
        return loss
