"""Block-wise aliasing attention: per-sample R from masks, group locality, batches, FI-VarNet option."""

import pytest
import torch

from models import FIVarNet, FIVarNetConfig, build_model, count_parameters
from models.aliasing import (
    AliasingAttention,
    aliased_attention,
    aliasing_factor,
    column_encoding,
)
from tests.model_inputs import column_mask, masked_kspace, single_thread  # noqa: F401 (autouse fixture)

TINY = {
    "feature_cascades": 2,
    "image_cascades": 1,
    "feature_chans": 4,
    "unet_chans": 4,
    "unet_pools": 2,
    "image_chans": 4,
    "image_pools": 2,
    "sens_chans": 2,
    "sens_pools": 2,
    "aliasing_attention": True,
}


# --- the acceleration of each mask ---------------------------------------------------------------


@pytest.mark.parametrize("acceleration", [4, 8])
@pytest.mark.parametrize("offset", [0, 1, 3])
def test_factor_of_equispaced_masks_with_an_acs_block(acceleration: int, offset: int) -> None:
    # SNU-style: 8 % centre at W 396, which makes W / sampled about 3.2 (R 4) and 5.1 (R 8).
    mask = column_mask(396, acceleration, offset=offset, center=32)
    assert aliasing_factor(mask).tolist() == [acceleration]


@pytest.mark.parametrize("acceleration", [2, 4, 8])
@pytest.mark.parametrize("width", [64, 75])
def test_factor_of_equispaced_masks_without_an_acs_block(acceleration: int, width: int) -> None:
    for offset in range(acceleration):
        mask = column_mask(width, acceleration, offset=offset)
        assert aliasing_factor(mask).tolist() == [acceleration], offset


def test_factor_of_fully_sampled_empty_and_centre_only_masks_is_one() -> None:
    masks = torch.cat([
        torch.ones(1, 1, 1, 40, 1, dtype=torch.bool),
        torch.zeros(1, 1, 1, 40, 1, dtype=torch.bool),
        column_mask(40, 40, offset=100, center=8),  # the centre block alone
    ])
    assert aliasing_factor(masks).tolist() == [1, 1, 1]


def test_factor_is_per_sample() -> None:
    mask = torch.cat([
        column_mask(96, 4, offset=1, center=8),
        column_mask(96, 8, offset=5, center=8),
        column_mask(96, 8, offset=2),
        torch.ones(1, 1, 1, 96, 1, dtype=torch.bool),
    ])
    factor = aliasing_factor(mask)
    assert factor.dtype == torch.int64 and factor.tolist() == [4, 8, 8, 1]


# --- the attention core --------------------------------------------------------------------------


def changed_positions(factor: int, width: int, row: int, col: int) -> set[tuple[int, int]]:
    """(row, column) pairs of the core's output that move when all of q, k, v move at (row, col)."""
    generator = torch.Generator().manual_seed(factor * 1000 + width)
    q, k, v = (torch.randn(1, 3, 5, width, generator=generator, dtype=torch.float64) for _ in range(3))
    before = aliased_attention(q, k, v, factor)
    for t in (q, k, v):
        t[0, :, row, col] += torch.randn(3, generator=generator, dtype=torch.float64)
    after = aliased_attention(q, k, v, factor)
    assert after.shape == v.shape
    diff = (after - before).abs().amax(dim=(0, 1))
    return {(r, c) for r, c in (diff > 1e-12).nonzero().tolist()}


@pytest.mark.parametrize(("factor", "width", "col"), [(4, 24, 0), (4, 24, 13), (8, 32, 30), (2, 10, 7)])
def test_core_attends_exactly_within_aliasing_groups(factor: int, width: int, col: int) -> None:
    group = {(col + j * width // factor) % width for j in range(factor)}
    assert len(group) == factor
    assert changed_positions(factor, width, 2, col) == {(2, c) for c in group}


@pytest.mark.parametrize(("factor", "width", "col"), [(4, 23, 5), (4, 21, 20), (8, 37, 36)])
def test_core_groups_of_a_padded_width(factor: int, width: int, col: int) -> None:
    # W is padded on the right to R * ceil(W / R); padded columns are neither keys nor outputs.
    chunk = -(-width // factor)
    group = {c for c in range(col % chunk, width, chunk)}
    assert changed_positions(factor, width, 4, col) == {(4, c) for c in group}


def test_core_with_factor_one_returns_the_values() -> None:
    q, k, v = torch.randn(3, 2, 4, 5, 7).unbind(0)
    torch.testing.assert_close(aliased_attention(q, k, v, 1), v)


@pytest.mark.parametrize(
    ("width", "factor", "group"), [(12, 3, [1, 5, 9]), (10, 4, [0, 3, 6, 9]), (10, 4, [2, 5, 8])]
)
def test_core_equals_dense_attention_over_the_real_group(width: int, factor: int, group: list[int]) -> None:
    # W 10, R 4 pads to 12: column 2's group {2, 5, 8, 11} holds one padded column, which takes no part.
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 6, 1, width, dtype=torch.float64).unbind(0)
    out = aliased_attention(q, k, v, factor)
    qg, kg, vg = (t[0, :, 0, group] for t in (q, k, v))  # (C, group size)
    weights = torch.softmax(qg.T @ kg / 6**0.5, dim=-1)
    torch.testing.assert_close(out[0, :, 0, group], vg @ weights.T)


# --- the module ----------------------------------------------------------------------------------


def test_column_encoding_tells_aliased_copies_apart() -> None:
    encoding = column_encoding(48, 4)[0, :, 0]  # (8, W)
    assert encoding.shape == (8, 48)
    for factor in (2, 4, 8):
        copies = encoding[:, 5 :: 48 // factor]
        distances = torch.cdist(copies.T, copies.T)
        assert (distances + torch.eye(factor) > 0.1).all(), factor


def test_module_batch_equals_single_samples_with_mixed_factors() -> None:
    torch.manual_seed(0)
    block = AliasingAttention(4)
    features = torch.randn(4, 4, 6, 33)
    features[1] *= 1e3
    factor = torch.tensor([4, 8, 1, 4])
    batch = block(features, factor)
    singles = torch.cat([block(features[i : i + 1], factor[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-5 * 1e3)
    assert torch.equal(batch[2], features[2])  # R 1: nothing aliases, the block is the identity
    assert not torch.allclose(batch[0], features[0])


def test_module_gradients_and_autocast() -> None:
    torch.manual_seed(0)
    block = AliasingAttention(4)
    features = torch.randn(2, 4, 5, 19, requires_grad=True)
    block(features, torch.tensor([4, 8])).square().mean().backward()
    params = dict(block.named_parameters())
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in params.values())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = block(features, torch.tensor([4, 8]))
    assert output.shape == features.shape and torch.isfinite(output).all()


def test_module_rejects_a_factor_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="factor must have shape"):
        AliasingAttention(2)(torch.randn(2, 2, 3, 8), torch.tensor([4]))


# --- FI-VarNet with aliasing attention -----------------------------------------------------------


def test_option_is_off_by_default_and_adds_one_block_per_feature_cascade() -> None:
    assert FIVarNetConfig().aliasing_attention is False
    with pytest.raises(ValueError, match="fivarnet.aliasing_attention: expected true or false"):
        FIVarNetConfig(aliasing_attention=1)
    with torch.device("meta"):
        plain = FIVarNet(feature_cascades=3, feature_chans=12)
        with_attention = FIVarNet(feature_cascades=3, feature_chans=12, aliasing_attention=True)
    assert all(c.aliasing is None for c in plain.feature_cascades)
    # q, k, v and out: 4 (C^2 + C); 8 encoding channels projected into q and k: 2 * 8 C.
    per_block = 4 * (12 * 12 + 12) + 2 * 8 * 12
    assert count_parameters(with_attention) == count_parameters(plain) + 3 * per_block


def mixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.cat([column_mask(45, 4, offset=1, center=6), column_mask(45, 8, offset=3, center=4)])
    return masked_kspace(mask, coils=3, height=20), mask


def test_fivarnet_batch_with_mixed_accelerations_equals_single_samples() -> None:
    torch.manual_seed(0)
    model = build_model({"name": "fivarnet", **TINY}).eval()
    kspace, mask = mixed_batch()
    assert aliasing_factor(mask).tolist() == [4, 8]
    with torch.no_grad():
        batch = model(kspace, mask)
        singles = torch.cat([model(kspace[i : i + 1], mask[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=1e-6)


def test_fivarnet_forward_backward_and_autocast() -> None:
    torch.manual_seed(0)
    model = build_model({"name": "fivarnet", **TINY})
    kspace, mask = mixed_batch()
    output = model(kspace, mask)
    output.mean().backward()
    assert output.shape == (2, 20, 45) and torch.isfinite(output).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    attention_grads = [p.grad for name, p in model.named_parameters() if ".aliasing." in name]
    assert len(attention_grads) == 2 * 10 and all(g.abs().sum() > 0 for g in attention_grads)

    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(kspace, mask)
    output.mean().backward()
    assert torch.isfinite(output).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_checkpointing_gives_identical_gradients() -> None:
    torch.manual_seed(0)
    plain = build_model({"name": "fivarnet", **TINY, "checkpointing": False})
    checkpointed = build_model({"name": "fivarnet", **TINY, "checkpointing": True})
    checkpointed.load_state_dict(plain.state_dict())
    kspace, mask = mixed_batch()

    calls = []
    plain.feature_cascades[1].aliasing.register_forward_pre_hook(lambda *_: calls.append("plain"))
    checkpointed.feature_cascades[1].aliasing.register_forward_pre_hook(lambda *_: calls.append("ckpt"))
    for model in (plain, checkpointed):
        model(kspace, mask).pow(2).mean().backward()
    assert calls.count("plain") == 1 and calls.count("ckpt") == 2  # recomputed during backward
    for (key, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-8, msg=key)
