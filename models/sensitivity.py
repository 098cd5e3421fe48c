"""Coil-sensitivity estimation from the centre of k-space (fastMRI's SensitivityModel, made ACS-robust)."""

import torch
from torch import nn

from models.fft import ifft2c
from models.unet import NormUnet


def _leading_ones(x: torch.Tensor) -> torch.Tensor:
    """Length of the run of True values at the start of each row of a (B, N) bool tensor."""
    return x.to(torch.int32).cumprod(dim=1).sum(dim=1)


class SensitivityModel(nn.Module):
    """Normalised coil sensitivities: k-space (B, C, H, W, 2), mask (B, 1, 1, W, 1) -> (B, C, H, W, 2).

    Centre selection. As in fastMRI, the width n of the fully sampled centre is twice the shorter of
    the sampled runs to the left of and from column W // 2 (at least 1), unless `num_low_frequencies`
    is given; columns [(W - n + 1) // 2, that + n) are kept. With a proper centre block this is
    fastMRI's behaviour exactly. (fastMRI reports a run that reaches the edge of k-space, i.e. a fully
    sampled half, as empty; here it counts its real length.)

    No-ACS fallback. Real masks can have a centre run of only 1-2 lines, which leaves one line or
    none (all-zero input, NaN after standardisation) for the U-Net. When n < `min_center_lines`, all
    *sampled* columns inside a central window of width max(`fallback_min_lines`,
    round(`fallback_fraction` * W)) (capped at W) are used instead, placed like a centre block; if that
    window holds no sampled column, every sampled column is used.

    Normalisation. Each coil map is divided by the root-sum-of-squares over coils, computed in
    float32 and floored at 1e-6 of the image's largest RSS (and the smallest normal float32), so pixels
    where the U-Net output vanishes give small maps instead of inf/NaN values or gradients.
    """

    def __init__(
        self,
        chans: int,
        num_pools: int,
        min_center_lines: int = 4,
        fallback_min_lines: int = 8,
        fallback_fraction: float = 0.08,
    ) -> None:
        super().__init__()
        self.min_center_lines = min_center_lines
        self.fallback_min_lines = fallback_min_lines
        self.fallback_fraction = fallback_fraction
        self.norm_unet = NormUnet(chans, num_pools)

    def center_columns(self, mask: torch.Tensor, num_low_frequencies: int | None = None) -> torch.Tensor:
        """Columns of k-space used for the estimate: mask (B, 1, 1, W, 1) -> bool (B, W)."""
        sampled = mask[:, 0, 0, :, 0].bool()
        batch, width = sampled.shape
        cols = torch.arange(width, device=mask.device).unsqueeze(0)

        if num_low_frequencies:
            n_center = torch.full((batch,), num_low_frequencies, device=mask.device)
        else:
            half = width // 2
            left = _leading_ones(sampled[:, :half].flip(1))
            right = _leading_ones(sampled[:, half:])
            n_center = torch.clamp_min(2 * torch.minimum(left, right), 1)
        start = (width - n_center + 1) // 2
        block = (cols >= start.unsqueeze(1)) & (cols < (start + n_center).unsqueeze(1))

        n_window = min(width, max(self.fallback_min_lines, round(self.fallback_fraction * width)))
        w_start = (width - n_window + 1) // 2
        window = sampled & (cols >= w_start) & (cols < w_start + n_window)
        window = torch.where(window.any(dim=1, keepdim=True), window, sampled)

        use_fallback = (n_center < self.min_center_lines).unsqueeze(1)
        return torch.where(use_fallback, window, block)

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | None = None,
    ) -> torch.Tensor:
        keep = self.center_columns(mask, num_low_frequencies)[:, None, None, :, None]
        center = masked_kspace * keep

        b, c, h, w, _ = center.shape
        coil_images = ifft2c(center).reshape(b * c, 1, h, w, 2)
        sens = self.norm_unet(coil_images).reshape(b, c, h, w, 2).float()

        sum_sq = (sens**2).sum(dim=-1).sum(dim=1, keepdim=True)
        peak = sum_sq.detach().amax(dim=(-2, -1), keepdim=True)
        floor = (peak * 1e-12).clamp_min(torch.finfo(torch.float32).tiny)
        return sens / sum_sq.clamp_min(floor).sqrt().unsqueeze(-1)
