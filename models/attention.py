"""Large-kernel attention for U-Net blocks: LKA (Guo et al. 2022) and LSKA (Lau et al. 2023).

A k x k depthwise kernel is decomposed into a local depthwise conv of size 2d-1 followed by a
depthwise conv of size m dilated by d, so that (2d-1) + d(m-1) = k. The decompositions are the ones
the LSKA paper uses (kernel k: local 2d-1, dilated m, dilation d):

    k = 7:  3, 3, 2        k = 23: 5, 7, 3
    k = 11: 3, 5, 2        k = 35: 5, 11, 3

LKA uses square depthwise kernels (O(k^2) weights per channel); LSKA splits each of the two into a
1 x n then an n x 1 depthwise conv (O(k) per channel). Both end in a 1x1 conv whose output gates the
gate's input multiplicatively. All convs carry a bias.
"""

from typing import Literal

import torch
from torch import nn

AttentionKind = Literal["none", "lka", "lska"]
AttentionKernel = Literal[7, 11, 23, 35]

KERNEL_DECOMPOSITION: dict[int, tuple[int, int, int]] = {
    7: (3, 3, 2),
    11: (3, 5, 2),
    23: (5, 7, 3),
    35: (5, 11, 3),
}


def _decompose(kernel: int) -> tuple[int, int, int]:
    if kernel not in KERNEL_DECOMPOSITION:
        raise ValueError(f"attention kernel: expected one of {sorted(KERNEL_DECOMPOSITION)}, got {kernel!r}")
    return KERNEL_DECOMPOSITION[kernel]


def _depthwise(chans: int, size: tuple[int, int], dilation: int = 1) -> nn.Conv2d:
    padding = (dilation * (size[0] // 2), dilation * (size[1] // 2))
    return nn.Conv2d(chans, chans, size, padding=padding, dilation=dilation, groups=chans)


class LKAGate(nn.Module):
    """LKA gate: x * conv1x1(dw_dilated(dw_local(x))), (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, chans: int, kernel: int) -> None:
        super().__init__()
        local, dilated, dilation = _decompose(kernel)
        self.spatial = nn.Sequential(
            _depthwise(chans, (local, local)),
            _depthwise(chans, (dilated, dilated), dilation),
            nn.Conv2d(chans, chans, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.spatial(x)


class LSKAGate(nn.Module):
    """LSKA gate: LKA with each depthwise kernel split into 1 x n then n x 1, (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, chans: int, kernel: int) -> None:
        super().__init__()
        local, dilated, dilation = _decompose(kernel)
        self.spatial = nn.Sequential(
            _depthwise(chans, (1, local)),
            _depthwise(chans, (local, 1)),
            _depthwise(chans, (1, dilated), dilation),
            _depthwise(chans, (dilated, 1), dilation),
            nn.Conv2d(chans, chans, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.spatial(x)


class AttentionBlock(nn.Module):
    """y = x + proj2(gate(GELU(proj1(x)))) with 1x1 projections, (N, C, H, W) -> (N, C, H, W).

    `kind` is "lka" or "lska"; `kernel` one of 7, 11, 23, 35.
    """

    def __init__(self, chans: int, kind: str, kernel: int) -> None:
        super().__init__()
        gates = {"lka": LKAGate, "lska": LSKAGate}
        if kind not in gates:
            raise ValueError(f"attention kind: expected one of {sorted(gates)}, got {kind!r}")
        self.proj1 = nn.Conv2d(chans, chans, kernel_size=1)
        self.act = nn.GELU()
        self.gate = gates[kind](chans, kernel)
        self.proj2 = nn.Conv2d(chans, chans, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj2(self.gate(self.act(self.proj1(x))))
