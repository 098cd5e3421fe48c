"""The U-Net that regularises FI-VarNet's feature maps, optionally with large-kernel attention."""

import torch
import torch.nn.functional as F
from torch import nn

from models.attention import AttentionBlock
from models.unet import ConvBlock, TransposeConvBlock


class AttentionConvBlock(nn.Module):
    """3x3 conv (no bias) -> instance norm -> LKA/LSKA attention -> LeakyReLU(0.2).

    (N, in_chans, H, W) -> (N, out_chans, H, W).

    Replaces a down-path `ConvBlock` in the deep levels of an attention U-Net (about half its weights).
    """

    def __init__(self, in_chans: int, out_chans: int, kind: str, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False)
        self.norm = nn.InstanceNorm2d(out_chans)
        self.attention = AttentionBlock(out_chans, kind, kernel)
        self.act = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.attention(self.norm(self.conv(x))))


class FeatureUnet(nn.Module):
    """Feature U-Net of FI-VarNet: (N, feature_chans, H, W) -> (N, feature_chans, H, W) for any H, W.

    Levels 0..num_pools-1 have widths chans * 2**level and the bottleneck chans * 2**num_pools. Down
    path: conv block per level then 2x2 average pooling; up path: 2x2 transposed conv, concatenation
    with the skip, conv block; output: 1x1 conv (no bias), instance norm, LeakyReLU(0.2).

    With `attention` "lka" or "lska", the down-path blocks of the `attention_depth` deepest levels
    (the bottleneck counts as one) are `AttentionConvBlock`s with kernel `attention_kernel`.

    Inputs are reflect-padded at the bottom/right to a multiple of 2**num_pools (replicate-padded when
    the image is too small to reflect) and the output is cropped back.
    """

    def __init__(
        self,
        feature_chans: int,
        chans: int,
        num_pools: int,
        attention: str = "none",
        attention_kernel: int = 7,
        attention_depth: int = 0,
    ) -> None:
        super().__init__()
        self.factor = 2**num_pools
        widths = [chans * 2**level for level in range(num_pools + 1)]
        inputs = [feature_chans] + widths[:-1]
        first_attention_level = num_pools + 1 - (attention_depth if attention != "none" else 0)

        def down_block(level: int) -> nn.Module:
            if level >= first_attention_level:
                return AttentionConvBlock(inputs[level], widths[level], attention, attention_kernel)
            return ConvBlock(inputs[level], widths[level])

        self.down = nn.ModuleList([down_block(level) for level in range(num_pools)])
        self.bottleneck = down_block(num_pools)
        deep_to_shallow = list(reversed(range(num_pools)))
        self.upsample = nn.ModuleList(
            [TransposeConvBlock(widths[lv + 1], widths[lv]) for lv in deep_to_shallow]
        )
        self.up = nn.ModuleList([ConvBlock(2 * widths[lv], widths[lv]) for lv in deep_to_shallow])
        self.output = nn.Sequential(
            nn.Conv2d(chans, feature_chans, kernel_size=1, bias=False),
            nn.InstanceNorm2d(feature_chans),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.factor, -width % self.factor
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, [0, pad_w, 0, pad_h], mode=mode)

        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        x = self.bottleneck(x)
        for upsample, block in zip(self.upsample, self.up):
            x = block(torch.cat([skips.pop(), upsample(x)], dim=1))
        return self.output(x)[..., :height, :width]
