"""Block-wise aliasing attention (FI-VarNet paper): attention over the columns that alias onto each other.

Sampling every R-th phase-encode column folds the image along W with period W/R: column x carries
copies of columns x + k W/R (mod W), k = 0..R-1. Splitting W into R contiguous chunks of W/R columns
and letting each pixel attend only to the pixels at the same row and the same offset in every
chunk gives each pixel exactly its R aliased partners. Unlike fastMRI's reference, R is read from
each sample's own mask, so one batch may mix accelerations.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def _leading_ones(x: torch.Tensor) -> torch.Tensor:
    """Length of the run of True values at the start of each row of a (B, N) bool tensor."""
    return x.to(torch.int32).cumprod(dim=1).sum(dim=1)


def aliasing_factor(mask: torch.Tensor) -> torch.Tensor:
    """Per-sample acceleration R of a column mask (B, 1, 1, W, 1) -> (B,) int64 on the mask's device.

    R is the median gap between consecutive sampled columns, counting only gaps whose two ends both
    lie outside the centre run (the sampled run containing column W // 2, i.e. the ACS block when
    there is one). Gaps inside or bordering the ACS block say nothing about the outer spacing, so:

    - equispaced and magic masks (fastMRI, SNU challenge) give their R exactly, with or without an
      ACS block, whereas W / (sampled columns) is lowered by the ACS block (about 5 for R 8);
    - the *_fraction families give the spacing their outer columns really have (above the nominal
      R, which counts the centre: 5 for equispaced_fraction R 4, 8 % centre, W 396);
    - random masks give the median of geometrically distributed gaps, about ln 2 times their mean
      outer spacing. With fastMRI's usual settings (R 4 with 8 %, R 8 with 4 % centre) that is R
      typically, but it varies from mask to mask (R 8 at W 396: 5 to 11 for 90 % of masks). Random
      sampling aliases incoherently, so no R is exact for it; the attention is then a heuristic.

    A mask with no such gap (fully sampled, centre block only, or empty) gives R 1: there is no
    periodic aliasing to attend over. The result is clamped to [1, W].
    """
    sampled = mask[:, 0, 0, :, 0].bool()
    width = sampled.shape[1]
    cols = torch.arange(width, device=mask.device)

    half = width // 2
    run_start = half - _leading_ones(sampled[:, :half].flip(1))
    run_stop = half + _leading_ones(sampled[:, half:])
    in_run = (cols >= run_start.unsqueeze(1)) & (cols < run_stop.unsqueeze(1))

    # Next sampled column after each column (W when none): a suffix minimum over sampled positions.
    positions = torch.where(sampled, cols, width)
    suffix_min = positions.flip(1).cummin(dim=1).values.flip(1)
    next_col = torch.cat([suffix_min[:, 1:], torch.full_like(suffix_min[:, :1], width)], dim=1)
    next_in_run = in_run.gather(1, next_col.clamp_max(width - 1))
    counted = sampled & (next_col < width) & ~in_run & ~next_in_run

    gaps = torch.where(counted, (next_col - cols).float(), torch.nan)
    median = gaps.nanmedian(dim=1).values
    factor = torch.where(median.isnan(), 1.0, median.round())
    return factor.long().clamp(1, width)


def aliased_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, factor: int) -> torch.Tensor:
    """Softmax attention within the aliasing groups of W: q, k (B, C, H, W), v (B, C', H, W) -> (B, C', H, W).

    W is zero-padded on the right to R * L, L = ceil(W / R); the group of column x is
    {x mod L + j L : j = 0..R-1} restricted to real columns (padded keys are masked out of the
    softmax, so no group sees a column twice or a made-up one; padded queries are cropped). For W
    divisible by R that is exactly {x + j W / R mod W}. Scores are scaled by 1 / sqrt(C). Computed in
    float32 (float64 for float64 inputs) with autocast off, since the R-way softmax is the
    precision-sensitive step; the result has v's dtype.
    """
    if factor < 1:
        raise ValueError(f"aliased_attention: factor must be >= 1, got {factor}")
    width = q.shape[-1]
    chunk = -(-width // factor)
    pad = chunk * factor - width
    dtype = torch.promote_types(v.dtype, torch.float32)
    with torch.autocast(device_type=q.device.type, enabled=False):
        # (B, C, H, R, L): index R picks the chunk, index L the offset shared by a group.
        qb, kb, vb = (F.pad(t.to(dtype), (0, pad)).unflatten(-1, (factor, chunk)) for t in (q, k, v))
        scores = torch.einsum("bchil,bchjl->bhlij", qb, kb) / math.sqrt(q.shape[1])
        if pad:
            padded = torch.arange(factor * chunk, device=q.device).view(factor, chunk) >= width
            scores = scores.masked_fill(padded.T[:, None, :], float("-inf"))
        weights = scores.softmax(dim=-1)
        out = torch.einsum("bhlij,bchjl->bchil", weights, vb)
    return out.flatten(-2)[..., :width].to(v.dtype)


def column_encoding(width: int, pairs: int, device: torch.device | None = None) -> torch.Tensor:
    """Sinusoidal encoding of the column index: (1, 2 * pairs, 1, W) float32.

    Pair p is sin and cos of 2 pi 2**p u with u = (x - W // 2) / W, the column's offset from the
    image centre in widths: at frequency 1 the R aliased copies of a column, R-th fractions of a
    width apart, get R distinct phases, and an offset in widths means the same for any W.
    """
    offsets = (torch.arange(width, device=device, dtype=torch.float32) - width // 2) / width
    freqs = 2 * math.pi * 2.0 ** torch.arange(pairs, device=device, dtype=torch.float32)
    angles = freqs[:, None] * offsets[None, :]
    return torch.cat([angles.sin(), angles.cos()]).view(1, 2 * pairs, 1, width)


class AliasingAttention(nn.Module):
    """Residual block-wise aliasing attention: features (B, C, H, W), factor (B,) int -> (B, C, H, W).

    y = x + out(aliased_attention(q, k, v, R)) with, on the instance-normed features n,
    q = Wq n + Pq e, k = Wk n + Pk e, v = Wv n (1x1 convs; e = `column_encoding`, 2 * `encoding_pairs`
    channels). The encoding enters queries and keys only: it lets the weights depend on which copy
    is which (centre versus periphery), while the values stay pure content.

    Samples are grouped by their R, one attention call per distinct R; a sample with R 1 has no
    aliased partner and is returned unchanged (not passed through the value/output convs).
    """

    def __init__(self, chans: int, encoding_pairs: int = 4) -> None:
        super().__init__()
        self.encoding_pairs = encoding_pairs
        self.query = nn.Conv2d(chans, chans, kernel_size=1)
        self.key = nn.Conv2d(chans, chans, kernel_size=1)
        self.value = nn.Conv2d(chans, chans, kernel_size=1)
        self.query_position = nn.Conv2d(2 * encoding_pairs, chans, kernel_size=1, bias=False)
        self.key_position = nn.Conv2d(2 * encoding_pairs, chans, kernel_size=1, bias=False)
        self.out = nn.Conv2d(chans, chans, kernel_size=1)

    def attend(self, features: torch.Tensor, factor: int) -> torch.Tensor:
        """The block for one R shared by the whole batch: (B, C, H, W) -> (B, C, H, W)."""
        normed = F.instance_norm(features)
        encoding = column_encoding(features.shape[-1], self.encoding_pairs, features.device)
        encoding = encoding.to(normed.dtype)
        q = self.query(normed) + self.query_position(encoding)
        k = self.key(normed) + self.key_position(encoding)
        return features + self.out(aliased_attention(q, k, self.value(normed), factor))

    def forward(self, features: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        batch = features.shape[0]
        if factor.shape != (batch,):
            shape = tuple(factor.shape)
            raise ValueError(f"AliasingAttention: factor must have shape ({batch},), got {shape}")
        output = features
        for value in factor.unique().tolist():
            if value == 1:
                continue
            rows = (factor == value).nonzero()[:, 0].to(features.device)
            if rows.numel() == batch:
                return self.attend(features, value)
            output = output.index_copy(0, rows, self.attend(features.index_select(0, rows), value))
        return output
