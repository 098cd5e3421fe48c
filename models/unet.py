"""fastMRI-compatible U-Net and NormUnet (same parameter names and shapes as `fastmri.models`)."""

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from models.fft import channels_to_complex, complex_to_channels


class ConvBlock(nn.Module):
    """Two 3x3 convs (no bias), each with instance norm and LeakyReLU(0.2).

    (N, in_chans, H, W) -> (N, out_chans, H, W).
    """

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        # fastMRI's block has Dropout2d at indices 3 and 7; skipping those keys keeps state dicts
        # interchangeable without carrying a dropout that is never used.
        self.layers = nn.Sequential(
            OrderedDict(
                [
                    ("0", nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False)),
                    ("1", nn.InstanceNorm2d(out_chans)),
                    ("2", nn.LeakyReLU(negative_slope=0.2, inplace=True)),
                    ("4", nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False)),
                    ("5", nn.InstanceNorm2d(out_chans)),
                    ("6", nn.LeakyReLU(negative_slope=0.2, inplace=True)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransposeConvBlock(nn.Module):
    """2x2 stride-2 transposed conv (no bias), instance norm, LeakyReLU(0.2).

    (N, in_chans, H, W) -> (N, out_chans, 2H, 2W).
    """

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2, bias=False),
            nn.InstanceNorm2d(out_chans),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Unet(nn.Module):
    """fastMRI's U-Net: (N, in_chans, H, W) -> (N, out_chans, H, W).

    H and W must be multiples of 2**num_pool_layers (`NormUnet` pads to that).
    """

    def __init__(self, in_chans: int, out_chans: int, chans: int, num_pool_layers: int) -> None:
        super().__init__()
        self.num_pool_layers = num_pool_layers
        self.down_sample_layers = nn.ModuleList([ConvBlock(in_chans, chans)])
        ch = chans
        for _ in range(num_pool_layers - 1):
            self.down_sample_layers.append(ConvBlock(ch, ch * 2))
            ch *= 2
        self.conv = ConvBlock(ch, ch * 2)

        self.up_conv = nn.ModuleList()
        self.up_transpose_conv = nn.ModuleList()
        for _ in range(num_pool_layers - 1):
            self.up_transpose_conv.append(TransposeConvBlock(ch * 2, ch))
            self.up_conv.append(ConvBlock(ch * 2, ch))
            ch //= 2
        self.up_transpose_conv.append(TransposeConvBlock(ch * 2, ch))
        self.up_conv.append(nn.Sequential(ConvBlock(ch * 2, ch), nn.Conv2d(ch, out_chans, kernel_size=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.num_pool_layers
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(f"Unet input {tuple(x.shape[-2:])} is not a multiple of {factor}; pad it first")
        skips = []
        for layer in self.down_sample_layers:
            x = layer(x)
            skips.append(x)
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        x = self.conv(x)
        for transpose_conv, conv in zip(self.up_transpose_conv, self.up_conv):
            x = conv(torch.cat([transpose_conv(x), skips.pop()], dim=1))
        return x


class NormUnet(nn.Module):
    """Normalised U-Net on one complex image per sample: (B, 1, H, W, 2) -> (B, 1, H, W, 2).

    The real and imaginary groups are standardised by their mean and (unbiased) std, zero-padded
    symmetrically to a multiple of max(16, 2**num_pools) (exactly fastMRI's padding for num_pools <= 4),
    passed through `Unet`, cropped and de-standardised. Statistics are taken in the input dtype
    (float32), so under autocast only the convolutions run in reduced precision.
    """

    def __init__(self, chans: int, num_pools: int) -> None:
        super().__init__()
        self.multiple = max(16, 2**num_pools)
        self.unet = Unet(in_chans=2, out_chans=2, chans=chans, num_pool_layers=num_pools)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = complex_to_channels(x)
        b, _, h, w = x.shape
        flat = x.reshape(b, 2, -1)
        mean = flat.mean(dim=2).view(b, 2, 1, 1)
        std = flat.std(dim=2).view(b, 2, 1, 1)
        x = (x - mean) / std

        h_total = math.ceil(h / self.multiple) * self.multiple
        w_total = math.ceil(w / self.multiple) * self.multiple
        top, left = (h_total - h) // 2, (w_total - w) // 2
        x = F.pad(x, [left, w_total - w - left, top, h_total - h - top])
        x = self.unet(x)[..., top : top + h, left : left + w]

        return channels_to_complex(x * std + mean)
