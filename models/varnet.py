"""E2E-VarNet (Sriram et al., MICCAI 2020), state-dict compatible with `fastmri.models.VarNet`."""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from models.fft import rss_image, sens_expand, sens_reduce
from models.sensitivity import SensitivityModel
from models.unet import NormUnet


def call_cascade(cascade: nn.Module, use_checkpoint: bool, *args: torch.Tensor) -> torch.Tensor:
    """Run `cascade(*args)`, recomputing its activations in the backward pass when `use_checkpoint`."""
    if use_checkpoint and torch.is_grad_enabled():
        return checkpoint(cascade, *args, use_reentrant=False)
    return cascade(*args)


class VarNetBlock(nn.Module):
    """One cascade: k - eta * M(k - k_measured) - E(U(R(k))), all k-space tensors (B, C, H, W, 2).

    `mask` is a bool tensor broadcastable to k-space, e.g. (B, 1, 1, W, 1); `model` maps a
    coil-combined image (B, 1, H, W, 2) to one of the same shape; eta (`dc_weight`) starts at 1.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.dc_weight = nn.Parameter(torch.ones(1))

    def forward(
        self,
        current_kspace: torch.Tensor,
        ref_kspace: torch.Tensor,
        mask: torch.Tensor,
        sens_maps: torch.Tensor,
    ) -> torch.Tensor:
        soft_dc = torch.where(mask, current_kspace - ref_kspace, 0.0) * self.dc_weight
        model_term = sens_expand(self.model(sens_reduce(current_kspace, sens_maps)), sens_maps)
        return current_kspace - soft_dc - model_term


class VarNet(nn.Module):
    """E2E-VarNet: masked k-space (B, C, H, W, 2) float32, mask (B, 1, 1, W, 1) bool -> RSS image (B, H, W).

    Parameter names and shapes match fastMRI's VarNet (`sens_net.*`, `cascades.{i}.dc_weight`,
    `cascades.{i}.model.unet.*`), so its state dicts load with strict=True; see `SensitivityModel`
    for how masks without a proper centre block are handled. With `checkpointing`, each cascade's
    activations are recomputed during backward instead of stored.
    """

    def __init__(
        self,
        num_cascades: int = 12,
        chans: int = 18,
        pools: int = 4,
        sens_chans: int = 8,
        sens_pools: int = 4,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.checkpointing = checkpointing
        self.sens_net = SensitivityModel(sens_chans, sens_pools)
        self.cascades = nn.ModuleList([VarNetBlock(NormUnet(chans, pools)) for _ in range(num_cascades)])

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | None = None,
    ) -> torch.Tensor:
        masked_kspace = masked_kspace.float()
        mask = mask.bool()
        sens_maps = self.sens_net(masked_kspace, mask, num_low_frequencies)
        kspace = masked_kspace
        for cascade in self.cascades:
            kspace = call_cascade(cascade, self.checkpointing, kspace, masked_kspace, mask, sens_maps)
        return rss_image(kspace)
