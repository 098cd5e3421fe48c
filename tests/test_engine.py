"""The training engine: resuming from a saved state continues exactly as if never interrupted."""

import io

import pytest
import torch

from tuner.config import TrialConfig
from tuner.engine import Trainer
from tuner.loaders import TrialData

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
