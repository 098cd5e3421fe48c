"""The training engine: exact resume (also under fp16 gradient scaling), precision choices, compiled models."""

import io

import pytest
import torch

from tuner.config.trial import TrialConfig
from tuner.train.engine import Trainer, autocast_dtype
from tuner.train.loaders import TrialData

CONFIG = {"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2, "model.pools": 2,
          "model.sens_chans": 2, "model.sens_pools": 2, "train.lr": 3e-3, "train.train_slices_per_epoch": 4}


def _epoch(trainer, data):
    return trainer.run_epoch(data.train_loader(trainer.epoch), data.val_loader())


def test_resume_from_state_matches_uninterrupted_training(tiny_data):
    config = TrialConfig.from_flat(CONFIG)
    data = TrialData(tiny_data, config.train)

    straight = Trainer(config, total_epochs=2)
    straight_results = [_epoch(straight, data) for _ in range(2)]

    first = Trainer(config, total_epochs=2)
    _epoch(first, data)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    torch.manual_seed(12345)  # a resumed process starts from unrelated RNG state
    resumed = Trainer(config, total_epochs=2)
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=False))
    second = _epoch(resumed, data)

    assert second.epoch == 2
    assert second.train_loss == pytest.approx(straight_results[1].train_loss, rel=1e-6)
    assert second.val.overall == pytest.approx(straight_results[1].val.overall, rel=1e-6)
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(straight.optimizer.param_groups[0]["lr"])


def test_epoch_metrics_cover_every_category(tiny_data):
    config = TrialConfig.from_flat(CONFIG)
    result = _epoch(Trainer(config, total_epochs=1), TrialData(tiny_data, config.train))
    metrics = result.metrics()
    for key in ("val_ssim", "val_ssim_brain_x4", "val_ssim_brain_x8", "val_ssim_knee_x4", "val_ssim_knee_x8",
                "val_ssim_x4", "val_ssim_x8", "train_loss", "lr", "epoch_seconds", "peak_memory_mb"):
        assert key in metrics
    assert metrics["val_ssim"] == pytest.approx((metrics["val_ssim_x4"] + metrics["val_ssim_x8"]) / 2)
    assert result.val.slices == len(TrialData(tiny_data, config.train).val)


def test_precision_choices_map_to_autocast_dtypes():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None, "float32 on the CPU unless asked"
    assert autocast_dtype("off", cpu) is None
    assert autocast_dtype("fp16", cpu) is torch.float16 and autocast_dtype("bf16", cpu) is torch.bfloat16


def test_fp16_trains_with_gradient_scaling_and_resumes_exactly(tiny_data):
    """The GradScaler path a card takes with fp16 (scale, unscale for clipping, step, update), on torch's CPU
    autocast: the scale survives a checkpoint and the resumed run continues as the uninterrupted one."""
    config = TrialConfig.from_flat({**CONFIG, "train.mixed_precision": "fp16", "train.grad_clip": 0.5})
    data = TrialData(tiny_data, config.train)
    straight = Trainer(config, total_epochs=2)
    assert straight.scaler.is_enabled() and straight.autocast_dtype is torch.float16
    results = [_epoch(straight, data) for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(r.train_loss)) for r in results)

    first = Trainer(config, total_epochs=2)
    _epoch(first, data)
    state = first.state_dict()
    assert state["scaler"]["scale"] == first.scaler.get_scale() > 0
    resumed = Trainer(config, total_epochs=2)
    resumed.load_state_dict(state)
    assert resumed.scaler.get_scale() == first.scaler.get_scale()
    second = _epoch(resumed, data)
    assert second.train_loss == pytest.approx(results[1].train_loss, rel=1e-6)
    assert second.val.overall == pytest.approx(results[1].val.overall, rel=1e-6)


def test_a_compiled_trainer_shares_its_weights_and_saves_the_plain_state_dict():
    """`train.compile` wraps the model for speed; checkpoints stay loadable by an uncompiled trainer."""
    config = TrialConfig.from_flat({**CONFIG, "train.compile": "default"})
    trainer = Trainer(config, total_epochs=1)
    assert trainer.network is not trainer.model and trainer.network._orig_mod is trainer.model
    state = trainer.state_dict()
    assert not any(key.startswith("_orig_mod") for key in state["model"])
    plain = Trainer(TrialConfig.from_flat(CONFIG), total_epochs=1)
    plain.load_state_dict(state)
    assert plain.network is plain.model, "compile off: the model itself"


def test_a_state_saved_without_gradient_scaling_resumes_with_it():
    """"auto" precision is float32 on a CPU and may be fp16 on a card: a CPU checkpoint resumes there."""
    unscaled = Trainer(TrialConfig.from_flat(CONFIG), total_epochs=1)
    assert not unscaled.scaler.is_enabled() and unscaled.state_dict()["scaler"] == {}
    scaled = Trainer(TrialConfig.from_flat({**CONFIG, "train.mixed_precision": "fp16"}), total_epochs=1)
    scaled.load_state_dict(unscaled.state_dict())
    assert scaled.scaler.is_enabled() and scaled.scaler.get_scale() == 2.0**16
