"""FI-VarNet (Giannakopoulos et al., Sci. Rep. 2024): feature-space cascades, then E2E image cascades."""

import torch
import torch.nn.functional as F
from torch import nn

from models.aliasing import AliasingAttention, aliasing_factor
from models.feature_unet import FeatureUnet
from models.fft import (
    channels_to_complex,
    complex_to_channels,
    rss_image,
    sens_expand,
    sens_reduce,
)
from models.sensitivity import SensitivityModel
from models.unet import NormUnet
from models.varnet import VarNetBlock, call_cascade


class FeatureEncoder(nn.Module):
    """Standardise a coil-combined image with its (re, im) statistics, then a 5x5 conv 2 -> F.

    image (B, 2, H, W), mean and var (B, 2, 1, 1) -> features (B, F, H, W).
    """

    def __init__(self, feature_chans: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, feature_chans, kernel_size=5, padding=2)

    def forward(self, image: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        return self.conv((image - mean) * torch.rsqrt(var))


class FeatureDecoder(nn.Module):
    """A 5x5 conv F -> 2, then undo the encoder's standardisation.

    features (B, F, H, W), mean and var (B, 2, 1, 1) -> image (B, 2, H, W), float32.
    """

    def __init__(self, feature_chans: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(feature_chans, 2, kernel_size=5, padding=2)

    def forward(self, features: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        return self.conv(features) * torch.sqrt(var) + mean


def _extra_conv(chans: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(2):
        layers += [
            nn.Conv2d(chans, chans, kernel_size=5, padding=2, bias=False),
            nn.InstanceNorm2d(chans),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
        ]
    return nn.Sequential(*layers)


class FeatureCascade(nn.Module):
    """One feature cascade: f <- IN(f); f - eta * Enc(R(M(E(Dec(f)) - k_measured))) - U(A(f)).

    features (B, F, H, W); ref_kspace and sens_maps (B, C, H, W, 2); mask bool (B, 1, 1, W, 1);
    mean, var (B, 2, 1, 1) are the statistics of the initial coil-combined image. As in the reference
    implementation, the data-consistency residual passes through the same encoder (standardisation
    included) as the image. eta (`dc_weight`) starts at 1. With `extra_conv`, the result is
    instance-normed and a residual pair of 5x5 convs is added.

    A is the identity, or with `aliasing_attention` an `AliasingAttention` driven by `factor` (B,),
    each sample's acceleration. As in the paper's reference code it feeds only the U-Net: the
    regulariser sees each pixel together with its aliased copies, while the identity path and the
    data-consistency residual still act on the features the cascade received.
    """

    def __init__(
        self,
        encoder: FeatureEncoder,
        decoder: FeatureDecoder,
        unet: FeatureUnet,
        feature_chans: int,
        extra_conv: bool,
        aliasing_attention: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.unet = unet
        self.dc_weight = nn.Parameter(torch.ones(1))
        self.extra_conv = _extra_conv(feature_chans) if extra_conv else None
        self.aliasing = AliasingAttention(feature_chans) if aliasing_attention else None

    def forward(
        self,
        features: torch.Tensor,
        ref_kspace: torch.Tensor,
        mask: torch.Tensor,
        sens_maps: torch.Tensor,
        mean: torch.Tensor,
        var: torch.Tensor,
        factor: torch.Tensor | None = None,
    ) -> torch.Tensor:
        features = F.instance_norm(features)
        image = channels_to_complex(self.decoder(features, mean, var))
        residual = torch.where(mask, sens_expand(image, sens_maps) - ref_kspace, 0.0)
        dc_term = self.encoder(complex_to_channels(sens_reduce(residual, sens_maps)), mean, var)
        unet_input = features
        if self.aliasing is not None:
            if factor is None:
                raise ValueError("FeatureCascade: aliasing attention needs the per-sample factor")
            unet_input = self.aliasing(features, factor)
        features = features - self.dc_weight * dc_term - self.unet(unet_input)
        if self.extra_conv is not None:
            features = F.instance_norm(features)
            features = features + self.extra_conv(features)
        return features


class FIVarNet(nn.Module):
    """FI-VarNet: masked k-space (B, C, H, W, 2) float32, mask (B, 1, 1, W, 1) bool -> RSS image (B, H, W).

    Sensitivities as in E2E-VarNet (see `SensitivityModel` for masks without a centre block). The
    coil-combined zero-filled image is standardised per sample by its (re, im) mean and variance and
    encoded to `feature_chans` features; `feature_cascades` `FeatureCascade`s refine them; the
    instance-normed features are decoded, expanded to k-space and refined by `image_cascades`
    E2E-VarNet cascades (NormUnet with `image_chans`, `image_pools`).

    - share_encoder: one encoder/decoder pair serves every feature cascade and the input/output
      conversion; otherwise each cascade has its own pair besides the input/output one.
    - extra_conv_every: feature cascade i gets the extra residual conv pair when
      i % extra_conv_every == 0 (0 disables it).
    - attention ("none", "lka", "lska"), attention_kernel, attention_depth: the first
      `attention_cascades` feature cascades (all when None) use attention blocks in the
      `attention_depth` deepest levels of their feature U-Net (see `FeatureUnet`).
    - aliasing_attention: every feature cascade applies block-wise aliasing attention before its
      U-Net (see `FeatureCascade`), with each sample's R estimated from its own mask by
      `models.aliasing.aliasing_factor`.
    - checkpointing: recompute each cascade's activations during backward.
    """

    def __init__(
        self,
        feature_cascades: int = 6,
        image_cascades: int = 1,
        feature_chans: int = 8,
        unet_chans: int = 16,
        unet_pools: int = 4,
        image_chans: int = 12,
        image_pools: int = 4,
        sens_chans: int = 4,
        sens_pools: int = 4,
        share_encoder: bool = True,
        extra_conv_every: int = 3,
        attention: str = "none",
        attention_kernel: int = 7,
        attention_cascades: int | None = None,
        attention_depth: int = 3,
        aliasing_attention: bool = False,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.checkpointing = checkpointing
        self.aliasing_attention = aliasing_attention
        self.sens_net = SensitivityModel(sens_chans, sens_pools)
        self.encoder = FeatureEncoder(feature_chans)
        self.decoder = FeatureDecoder(feature_chans)
        if attention_cascades is None:
            attention_cascades = feature_cascades

        cascades = []
        for index in range(feature_cascades):
            with_attention = attention != "none" and index < attention_cascades
            unet = FeatureUnet(
                feature_chans,
                unet_chans,
                unet_pools,
                attention=attention if with_attention else "none",
                attention_kernel=attention_kernel,
                attention_depth=attention_depth,
            )
            cascades.append(
                FeatureCascade(
                    self.encoder if share_encoder else FeatureEncoder(feature_chans),
                    self.decoder if share_encoder else FeatureDecoder(feature_chans),
                    unet,
                    feature_chans,
                    extra_conv=extra_conv_every > 0 and index % extra_conv_every == 0,
                    aliasing_attention=aliasing_attention,
                )
            )
        self.feature_cascades = nn.ModuleList(cascades)
        self.image_cascades = nn.ModuleList(
            [VarNetBlock(NormUnet(image_chans, image_pools)) for _ in range(image_cascades)]
        )

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | None = None,
    ) -> torch.Tensor:
        masked_kspace = masked_kspace.float()
        mask = mask.bool()
        sens_maps = self.sens_net(masked_kspace, mask, num_low_frequencies)

        image = complex_to_channels(sens_reduce(masked_kspace, sens_maps))
        mean = image.mean(dim=(-2, -1), keepdim=True)
        # The floor only matters for an all-zero slice, which would otherwise divide by zero.
        var = image.var(dim=(-2, -1), unbiased=False, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)

        factor: tuple[torch.Tensor, ...] = ()
        if self.aliasing_attention:
            # On the host: every cascade groups its samples by R there, so this is the forward's only
            # device sync for it. expand: one mask may serve the whole batch.
            factor = (aliasing_factor(mask).cpu().expand(masked_kspace.shape[0]),)

        features = self.encoder(image, mean, var)
        for cascade in self.feature_cascades:
            features = call_cascade(
                cascade, self.checkpointing, features, masked_kspace, mask, sens_maps, mean, var, *factor
            )
        image = channels_to_complex(self.decoder(F.instance_norm(features), mean, var))

        kspace = sens_expand(image, sens_maps)
        for cascade in self.image_cascades:
            kspace = call_cascade(cascade, self.checkpointing, kspace, masked_kspace, mask, sens_maps)
        return rss_image(kspace)
