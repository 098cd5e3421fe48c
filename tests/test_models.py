"""E2E-VarNet against fastMRI, the sensitivity fallback, checkpointing, and the model registry."""

import dataclasses

import fastmri
import numpy as np
import pytest
import torch
from fastmri.models import VarNet as FastMRIVarNet
from torch import nn

from models import (
    MODEL_CONFIGS,
    FIVarNetConfig,
    VarNet,
    VarNetConfig,
    build_model,
    count_parameters,
    parse_config,
)
from models.fft import fft2c, ifft2c, rss_image
from models.sensitivity import SensitivityModel
from tests.model_inputs import column_mask, masked_kspace, single_thread  # noqa: F401 (autouse fixture)

TINY = {
    "varnet": {"name": "varnet", "num_cascades": 2, "chans": 4, "sens_chans": 2},
    "fivarnet": {
        "name": "fivarnet",
        "feature_cascades": 2,
        "image_cascades": 1,
        "feature_chans": 4,
        "unet_chans": 4,
        "image_chans": 4,
        "sens_chans": 2,
        "attention": "lska",
        "attention_cascades": 1,
    },
}




def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


# --- fastMRI compatibility ---------------------------------------------------------------------


def test_fft_helpers_match_fastmri_and_compute_in_float32() -> None:
    x = torch.randn(2, 3, 21, 37, 2)
    torch.testing.assert_close(fft2c(x), fastmri.fft2c(x))
    torch.testing.assert_close(ifft2c(x), fastmri.ifft2c(x))
    torch.testing.assert_close(ifft2c(fft2c(x)), x, rtol=1e-5, atol=1e-5)
    expected_rss = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(x)), dim=1)
    torch.testing.assert_close(rss_image(x), expected_rss)
    # Odd sizes in half precision: computed in float32 instead of failing.
    half = x.to(torch.bfloat16)
    assert fft2c(half).dtype == torch.float32
    torch.testing.assert_close(fft2c(half), fastmri.fft2c(half.float()))


def test_varnet_loads_fastmri_weights_and_matches_output() -> None:
    torch.manual_seed(0)
    reference = FastMRIVarNet(num_cascades=2, chans=8, sens_chans=4).eval()
    model = VarNet(num_cascades=2, chans=8, sens_chans=4).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    reference.load_state_dict(model.state_dict(), strict=True)

    # Batch 2 with different offsets: the centre block is found per sample.
    mask = torch.cat([column_mask(24, 4, offset=0, center=6), column_mask(24, 4, offset=1, center=6)])
    kspace = masked_kspace(mask)
    with torch.no_grad():
        expected = reference(kspace, mask)
        actual = model(kspace, mask)
        single = model(kspace[:1], mask[:1])
        explicit = model(kspace, mask, num_low_frequencies=6)
        explicit_reference = reference(kspace, mask, num_low_frequencies=6)
    assert actual.shape == (2, 32, 24) and actual.dtype == torch.float32
    assert relative_error(actual, expected) < 1e-4
    assert relative_error(single, expected[:1]) < 1e-4
    assert relative_error(explicit, explicit_reference) < 1e-4


def test_varnet_parameter_count_matches_fastmri() -> None:
    with torch.device("meta"):
        model = build_model({"name": "varnet", "num_cascades": 12, "chans": 18, "sens_chans": 8})
        reference = FastMRIVarNet(num_cascades=12, chans=18, sens_chans=8)
    assert count_parameters(model) == 29_936_966
    assert count_parameters(model) == count_parameters(reference)
    assert count_parameters(model.sens_net) == 484_898
    assert count_parameters(model.cascades[0]) == 2_454_339


# --- sensitivity estimation without an ACS block ----------------------------------------------


def test_center_columns_keep_fastmri_block_when_present() -> None:
    sens = SensitivityModel(chans=2, num_pools=2)
    mask = column_mask(24, 4, center=6)
    keep = sens.center_columns(mask)[0]
    assert keep.nonzero().flatten().tolist() == [9, 10, 11, 12, 13, 14]
    explicit = sens.center_columns(mask, num_low_frequencies=4)[0]
    assert explicit.nonzero().flatten().tolist() == [10, 11, 12, 13]


def test_center_columns_fall_back_to_sampled_lines_in_central_window() -> None:
    sens = SensitivityModel(chans=2, num_pools=2)
    # Every 4th column only: the centre run is 1 line, so the 8-wide central window [8, 16) is used.
    keep = sens.center_columns(column_mask(24, 4, offset=0))[0]
    assert keep.nonzero().flatten().tolist() == [8, 12]
    # W = 200: the window is round(0.08 * 200) = 16 lines wide, [92, 108).
    keep = sens.center_columns(column_mask(200, 4, offset=1))[0]
    assert keep.nonzero().flatten().tolist() == [93, 97, 101, 105]
    # No sampled column in the window at all: every sampled column is used.
    sparse = torch.zeros(1, 1, 1, 24, 1, dtype=torch.bool)
    sparse[..., [1, 22], :] = True
    assert sens.center_columns(sparse)[0].nonzero().flatten().tolist() == [1, 22]


@pytest.mark.parametrize("name", ["varnet", "fivarnet"])
@pytest.mark.parametrize("offset", [0, 2])
def test_no_acs_mask_gives_finite_output_and_gradients(name: str, offset: int) -> None:
    torch.manual_seed(0)
    model = build_model(TINY[name])
    # Every 4th column only: offset 0 samples column W // 2 (a centre run of 1), offset 2 does not.
    mask = column_mask(24, 4, offset=offset)
    kspace = masked_kspace(mask)
    output = model(kspace, mask)
    output.mean().backward()
    assert torch.isfinite(output).all() and output.abs().max() > 0
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    sens_maps = model.sens_net(kspace, mask)
    rss = sens_maps.pow(2).sum(dim=(1, -1)).sqrt()
    torch.testing.assert_close(rss, torch.ones_like(rss))


# --- forward on other shapes, checkpointing, autocast ------------------------------------------


@pytest.mark.parametrize("name", ["varnet", "fivarnet"])
def test_forward_on_odd_sizes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(TINY[name]).eval()
    mask = torch.cat([column_mask(37, 4, offset=0, center=4), column_mask(37, 3, offset=2, center=3)])
    with torch.no_grad():
        output = model(masked_kspace(mask, coils=3, height=21), mask)
    assert output.shape == (2, 21, 37)
    assert torch.isfinite(output).all()


@pytest.mark.parametrize("name", ["varnet", "fivarnet"])
def test_checkpointing_gives_identical_gradients(name: str) -> None:
    torch.manual_seed(0)
    plain = build_model({**TINY[name], "checkpointing": False})
    checkpointed = build_model({**TINY[name], "checkpointing": True})
    checkpointed.load_state_dict(plain.state_dict())
    mask = column_mask(24, 4, center=6)
    kspace = masked_kspace(mask)

    calls = []
    cascades = plain.cascades if name == "varnet" else plain.feature_cascades
    cascades_ckpt = checkpointed.cascades if name == "varnet" else checkpointed.feature_cascades
    cascades[0].register_forward_pre_hook(lambda *_: calls.append("plain"))
    cascades_ckpt[0].register_forward_pre_hook(lambda *_: calls.append("checkpointed"))

    for model in (plain, checkpointed):
        model(kspace, mask).pow(2).mean().backward()
    # The checkpointed cascade really recomputed its forward pass during backward.
    assert calls.count("plain") == 1 and calls.count("checkpointed") == 2
    # (The first cascade's dc_weight gets a zero gradient: its k-space still equals the measurement.)
    assert sum(int(p.grad.count_nonzero()) for p in plain.parameters()) > 0.9 * count_parameters(plain)
    for (key, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-8, msg=key)


@pytest.mark.parametrize("name", ["varnet", "fivarnet"])
def test_runs_under_bfloat16_autocast(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(TINY[name])
    mask = column_mask(37, 4, center=4)  # width 37: half-precision FFTs would be unsupported
    kspace = masked_kspace(mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(kspace, mask)
    output.mean().backward()
    assert output.dtype == torch.float32
    assert torch.isfinite(output).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# --- registry -------------------------------------------------------------------------------------


def test_registry_builds_each_model_from_defaults() -> None:
    assert set(MODEL_CONFIGS) == {"varnet", "fivarnet"}
    for name, config_type in MODEL_CONFIGS.items():
        config = parse_config({"name": name})
        assert config == config_type()
        for field in dataclasses.fields(config_type):
            assert field.default is not dataclasses.MISSING, (name, field.name)
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.checkpointing = True  # type: ignore[misc]
    with torch.device("meta"):
        assert isinstance(build_model(VarNetConfig(num_cascades=1)), VarNet)
        assert count_parameters(build_model({"name": "fivarnet"})) > 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"chans": 8}, "missing 'name'; known names: ['fivarnet', 'varnet']"),
        ({"name": "unet"}, "unknown name 'unet'; known names: ['fivarnet', 'varnet']"),
        ({"name": "varnet", "cascades": 4}, "varnet.cascades: unknown key (expected one of ['num_cascades', "),
        ({"name": "varnet", "chans": 0}, "varnet.chans: expected an integer >= 1, got 0"),
        ({"name": "varnet", "chans": 8.0}, "varnet.chans: expected an integer >= 1, got 8.0"),
        ({"name": "varnet", "pools": 9}, "varnet.pools: expected an integer in [1, 6], got 9"),
        ({"name": "varnet", "num_cascades": True}, "varnet.num_cascades: expected an integer >= 1, got True"),
        ({"name": "varnet", "checkpointing": 1}, "varnet.checkpointing: expected true or false, got 1"),
        (
            {"name": "fivarnet", "attention": "lsk"},
            "fivarnet.attention: expected one of ['none', 'lka', 'lska'], got 'lsk'",
        ),
        (
            {"name": "fivarnet", "attention_kernel": 9},
            "fivarnet.attention_kernel: expected one of [7, 11, 23, 35], got 9",
        ),
        (
            {"name": "fivarnet", "feature_cascades": 4, "attention_cascades": 5},
            "fivarnet.attention_cascades: expected an integer in [0, 4] or None, got 5",
        ),
        (
            {"name": "fivarnet", "unet_pools": 3, "attention_depth": 5},
            "fivarnet.attention_depth: expected an integer in [1, 4], got 5",
        ),
    ],
)
def test_build_model_rejects_bad_configs(config: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        build_model(config)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_configs_normalise_integral_values() -> None:
    config = FIVarNetConfig(
        feature_cascades=np.int64(3), attention_kernel=np.int64(11), attention=np.str_("lka")
    )
    assert type(config.feature_cascades) is int and config.feature_cascades == 3
    assert type(config.attention_kernel) is int and config.attention_kernel == 11
    assert type(config.attention) is str and config.attention == "lka"


def test_count_parameters_counts_shared_modules_once_and_skips_frozen() -> None:
    shared = nn.Linear(3, 2)  # 8 parameters
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(2, 1))  # + 3
    assert count_parameters(model) == 11
    model[3].weight.requires_grad_(False)
    assert count_parameters(model) == 9
