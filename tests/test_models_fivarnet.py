"""FI-VarNet: parameter counts of the 2025 adopted model, attention blocks, structure options."""

import dataclasses

import pytest
import torch

from models import FIVARNET_2025, FIVarNet, build_model, count_parameters
from models.attention import KERNEL_DECOMPOSITION, AttentionBlock, LKAGate, LSKAGate
from models.feature_unet import AttentionConvBlock, FeatureUnet
from models.fivarnet import FeatureDecoder, FeatureEncoder
from tests.model_inputs import column_mask, masked_kspace, single_thread  # noqa: F401 (autouse fixture)

TINY = dict(feature_cascades=1, image_cascades=1, feature_chans=4, unet_chans=4, image_chans=4, sens_chans=2)


# --- the 2025 challenge's adopted model (docs/models.md) ------------------------------------------


def test_adopted_model_parameter_counts() -> None:
    with torch.device("meta"):
        model = build_model({"name": "fivarnet", **dataclasses.asdict(FIVARNET_2025)})
    total = count_parameters(model)
    assert abs(total - 67_625_464) <= 0.005 * 67_625_464
    assert total == 67_625_464

    assert count_parameters(model.sens_net) == 484_898
    assert count_parameters(model.encoder) == 612 and count_parameters(model.decoder) == 602
    assert all(c.encoder is model.encoder and c.decoder is model.decoder for c in model.feature_cascades)

    counts = [count_parameters(c) for c in model.feature_cascades]  # shared encoder/decoder included
    lska, plain, extra = 3_218_271, 4_366_719, 7_200
    assert counts[:5] == [lska + extra, lska, lska, lska + extra, lska]
    # Cascades 6, 9 and 12 carry the extra convs.
    assert counts[5:] == [plain, plain + extra, plain] * 3 + [plain]
    assert count_parameters(model.feature_cascades[5].unet) == 4_365_504
    assert [count_parameters(c) for c in model.image_cascades] == [2_454_339] * 3


def test_lska_attention_block_parameter_count() -> None:
    # 1x1 proj1, proj2 and gate mix: 3 (C^2 + C); four separable depthwise convs: 4 (3C + C).
    for chans in (96, 192, 384):
        assert count_parameters(AttentionBlock(chans, "lska", 7)) == 3 * chans**2 + 19 * chans
    # LKA: dense 3x3 and dilated 3x3 depthwise convs: 2 (9C + C).
    assert count_parameters(AttentionBlock(96, "lka", 7)) == 3 * 96**2 + 3 * 96 + 20 * 96


# --- attention -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gate_type", [LKAGate, LSKAGate])
@pytest.mark.parametrize("kernel", sorted(KERNEL_DECOMPOSITION))
def test_gate_decomposition_covers_a_kernel_by_kernel_window(gate_type: type, kernel: int) -> None:
    gate = gate_type(1, kernel)
    with torch.no_grad():
        for conv in gate.spatial:
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        impulse = torch.zeros(1, 1, 61, 61)
        impulse[..., 30, 30] = 1.0
        support = gate.spatial(impulse)[0, 0] != 0
    rows, cols = support.nonzero().unbind(1)
    assert int(support.sum()) == kernel * kernel
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (30 - kernel // 2, 30 + kernel // 2) * 2


ATTENTION_CHOICES = [("none", 7)] + [
    (kind, kernel) for kind in ("lka", "lska") for kernel in sorted(KERNEL_DECOMPOSITION)
]


@pytest.mark.parametrize(("attention", "kernel"), ATTENTION_CHOICES)
def test_every_attention_choice_runs_forward_and_backward(attention: str, kernel: int) -> None:
    torch.manual_seed(0)
    model = build_model({"name": "fivarnet", **TINY, "attention": attention, "attention_kernel": kernel})
    gates = [m for m in model.modules() if isinstance(m, (LKAGate, LSKAGate))]
    assert len(gates) == (0 if attention == "none" else 3)  # default attention_depth 3, one cascade
    assert all(isinstance(g, LKAGate if attention == "lka" else LSKAGate) for g in gates)

    mask = column_mask(32, 4, center=4)
    output = model(masked_kspace(mask), mask)
    output.mean().backward()
    assert output.shape == (1, 32, 32) and torch.isfinite(output).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert all(g.spatial[-1].weight.grad.abs().sum() > 0 for g in gates)


def test_attention_goes_to_first_cascades_and_deepest_levels() -> None:
    with torch.device("meta"):
        model = FIVarNet(
            feature_cascades=4, unet_pools=3, attention="lka", attention_cascades=2, attention_depth=2
        )
    for index, cascade in enumerate(model.feature_cascades):
        blocks = [*cascade.unet.down, cascade.unet.bottleneck]
        with_attention = [isinstance(b, AttentionConvBlock) for b in blocks]
        assert with_attention == ([False, False, True, True] if index < 2 else [False] * 4)


# --- structure options ---------------------------------------------------------------------------


def test_unshared_encoders_give_each_cascade_its_own_pair() -> None:
    with torch.device("meta"):
        shared = FIVarNet(feature_cascades=3, feature_chans=8)
        own = FIVarNet(feature_cascades=3, feature_chans=8, share_encoder=False)
    pair = count_parameters(shared.encoder) + count_parameters(shared.decoder)
    assert pair == (2 * 25 * 8 + 8) + (8 * 25 * 2 + 2)
    assert count_parameters(own) == count_parameters(shared) + 3 * pair
    assert len({id(c.encoder) for c in own.feature_cascades} | {id(own.encoder)}) == 4


@pytest.mark.parametrize(("every", "expected"), [(0, []), (1, [0, 1, 2, 3, 4]), (2, [0, 2, 4]), (3, [0, 3])])
def test_extra_conv_every(every: int, expected: list[int]) -> None:
    with torch.device("meta"):
        model = FIVarNet(feature_cascades=5, extra_conv_every=every)
    assert [i for i, c in enumerate(model.feature_cascades) if c.extra_conv is not None] == expected


def test_decoder_undoes_encoder_normalisation() -> None:
    encoder, decoder = FeatureEncoder(2), FeatureDecoder(2)
    with torch.no_grad():
        for conv in (encoder.conv, decoder.conv):
            conv.weight.zero_()
            conv.weight[[0, 1], [0, 1], 2, 2] = 1.0  # identity through the centre tap
            conv.bias.zero_()
        image = torch.randn(2, 2, 9, 11) * 3e-5 + 1e-5
        mean = image.mean(dim=(-2, -1), keepdim=True)
        var = image.var(dim=(-2, -1), unbiased=False, keepdim=True)
        features = encoder(image, mean, var)
        restored = decoder(features, mean, var)
    torch.testing.assert_close(features.mean(dim=(-2, -1)), torch.zeros(2, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(features.var(dim=(-2, -1), unbiased=False), torch.ones(2, 2))
    torch.testing.assert_close(restored, image, rtol=1e-5, atol=1e-10)


def test_batch_output_equals_per_sample_outputs() -> None:
    torch.manual_seed(0)
    model = build_model({"name": "fivarnet", **TINY, "attention": "lska"}).eval()
    mask = torch.cat([column_mask(24, 4, offset=0, center=6), column_mask(24, 4, offset=3, center=4)])
    kspace = masked_kspace(mask)
    kspace[1] *= 1e-4  # very different scales: statistics must be per sample
    with torch.no_grad():
        batch = model(kspace, mask)
        singles = torch.cat([model(kspace[i : i + 1], mask[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=0)


# (3, 40) is too short to reflect-pad to 8 rows, so it takes the replicate-padding path.
@pytest.mark.parametrize("size", [(33, 37), (3, 40)])
def test_feature_unet_handles_any_size(size: tuple[int, int]) -> None:
    unet = FeatureUnet(feature_chans=3, chans=4, num_pools=3, attention="lska", attention_depth=2)
    features = torch.randn(2, 3, *size)
    output = unet(features)
    assert output.shape == features.shape and torch.isfinite(output).all()
