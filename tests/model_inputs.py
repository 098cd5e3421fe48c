"""Small synthetic model inputs shared by the model tests."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """These tensors are tiny: on a shared machine, extra intra-op threads cost far more than they save."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def column_mask(width: int, acceleration: int, offset: int = 0, center: int = 0) -> torch.Tensor:
    """fastMRI-style equispaced mask (1, 1, 1, W, 1): every R-th column from `offset` plus a centre block."""
    mask = torch.zeros(width, dtype=torch.bool)
    mask[offset::acceleration] = True
    start = (width - center + 1) // 2
    mask[start : start + center] = True
    return mask.view(1, 1, 1, width, 1)


def masked_kspace(mask: torch.Tensor, coils: int = 4, height: int = 32, seed: int = 0) -> torch.Tensor:
    """Random multi-coil k-space (B, C, H, W, 2) zeroed outside the mask's columns."""
    generator = torch.Generator().manual_seed(seed)
    batch, width = mask.shape[0], mask.shape[3]
    return torch.randn(batch, coils, height, width, 2, generator=generator) * mask
