"""Augmentation as search dimensions: the YAML `augment:` section, trial configs and the trial's loaders."""

import textwrap

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from tuner.config.space import load_space
from tuner.config.trial import ConfigError, TrialConfig
from tuner.contract import SpecError
from tuner.train.engine import Trainer
from tuner.train.loaders import TrialData

SPACE = """
name: a
model: {name: varnet, num_cascades: 1, chans: 2, pools: 2, sens_chans: 2, sens_pools: 2}
augment:
  mraugment:
    enabled: {choice: [false, true]}
    rotation: 0.0
    schedule:
      kind: linear
      p_max: {uniform: [0.2, 0.8], when: {mraugment.enabled: [true]}}
  crop: {height: {choice: [null, 48]}}
search:
  num_samples: 4
  points_to_evaluate: [{augment: {mraugment: {enabled: true, schedule: {p_max: 0.5}}}}]
"""

TINY_MODEL = {"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2, "model.pools": 2,
              "model.sens_chans": 2, "model.sens_pools": 2}


def _spec(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return load_space(path)


def test_augment_parts_nest_and_can_be_searched(tmp_path):
    spec = _spec(tmp_path, SPACE)
    assert {p.key: p.when for p in spec.params} == {
        "augment.mraugment.enabled": {},
        "augment.mraugment.schedule.p_max": {"augment.mraugment.enabled": (True,)},
        "augment.crop.height": {},
    }
    assert spec.fixed["augment.mraugment.schedule.kind"] == "linear"
    assert spec.fixed["augment.mraugment.rotation"] == 0.0
    assert spec.search.points_to_evaluate == (
        {"augment.mraugment.enabled": True, "augment.mraugment.schedule.p_max": 0.5},)
    config = spec.trial_config({"augment.mraugment.enabled": True, "augment.mraugment.schedule.p_max": 0.3,
                                "augment.crop.height": 48})
    assert config.augment.mraugment.schedule.p_max == 0.3 and config.augment.crop.height == 48
    # A trial config survives the trip through MLflow params and checkpoints.
    assert TrialConfig.from_flat(config.flat()) == config
    assert TrialConfig.from_dict(config.as_dict()) == config


@pytest.mark.parametrize("replace, message", [
    ("p_max: {uniform: [0.2, 0.8]", "p_max: {uniform: [0.2, 1.8]"),
    ("kind: linear", "kind: sideways"),
    ("rotation: 0.0", "spin: 0.0"),
])
def test_bad_augment_values_name_their_key(tmp_path, replace, message):
    with pytest.raises(SpecError, match=r"augment\.mraugment\."):
        _spec(tmp_path, SPACE.replace(replace, message))


def test_a_flat_key_nested_where_a_value_is_refused():
    with pytest.raises(ConfigError, match="augment.crop.height.x"):
        TrialConfig.from_flat({**TINY_MODEL, "augment.crop.height": 48, "augment.crop.height.x": 1})


def test_trial_loaders_follow_the_schedule_and_keep_validation_unaugmented(tiny_data):
    config = TrialConfig.from_flat({
        **TINY_MODEL, "augment.mraugment.enabled": True, "augment.mraugment.schedule.kind": "linear",
        "augment.mraugment.schedule.ramp_epochs": 2, "augment.duplication.enabled": True,
        "augment.crop.height": 48,
    })
    plain = TrialData(tiny_data, config.train)
    data = TrialData(tiny_data, config.train, config.augment)
    assert len(data.train) == 2 * len(plain.train), "every slice once at 4x and once at 8x"
    trainer = Trainer(config, total_epochs=3, device=torch.device("cpu"))
    probe = data.largest_batch()
    assert probe.image_transform.any(), "the probe pays for MRAugment's resampling"
    assert trainer.prepare_train(probe, trainer.device).masked_kspace.shape[2] == 48, "the probe sees the crop"
    # Validation: cropped like training, never MRAugmented, the same at every epoch.
    first = trainer.prepare_eval(next(iter(data.val_loader())), trainer.device)
    data.train_loader(5, [0.5, 0.4])
    again = trainer.prepare_eval(next(iter(data.val_loader())), trainer.device)
    assert first.masked_kspace.shape[2] == 48 and torch.equal(first.masked_kspace, again.masked_kspace)
    assert torch.equal(first.target, next(iter(plain.val_loader())).target)

    seen = []
    for _ in range(2):
        batches = data.train_loader(trainer.epoch, trainer.val_losses)
        seen.append(data.augmentation_metrics()["aug_p_mraugment"])
        result = trainer.run_epoch(batches, data.val_loader())
        assert trainer.val_losses[-1] == pytest.approx(1 - result.val.overall)
    assert seen == [0.0, 0.25], "linear ramp from 0 to p_max 0.5 over 2 epochs"
    resumed = Trainer(config, total_epochs=3, device=torch.device("cpu"))
    resumed.load_state_dict(trainer.state_dict())
    assert resumed.val_losses == trainer.val_losses


def test_a_model_trained_on_cropped_compressed_slices_reconstructs_as_it_validated(tiny_data, tmp_path, capsys):
    import json

    from tuner.cli import main

    config = TrialConfig.from_flat({**TINY_MODEL, "train.train_slices_per_epoch": 4, "augment.crop.height": 48,
                                    "augment.compression.method": "scc",
                                    "augment.compression.num_virtual_coils": 2})
    data = TrialData(tiny_data, config.train, config.augment)
    trainer = Trainer(config, total_epochs=1, device=torch.device("cpu"))
    trainer.run_epoch(data.train_loader(0), data.val_loader())
    val = trainer.validate(data.val_loader())
    checkpoint = tmp_path / "best.pt"
    torch.save({"epoch": 1, "model": trainer.model.state_dict(), "config": config.as_dict()}, checkpoint)
    out = tmp_path / "recon"
    assert main(["reconstruct", "--model", str(checkpoint), "--data", str(tiny_data / "val" / "kspace"),
                 "--out", str(out)]) == 0
    assert main(["evaluate", "--recon", str(out), "--data", str(tiny_data / "val"), "--json",
                 str(tmp_path / "scores.json")]) == 0
    assert json.loads((tmp_path / "scores.json").read_text())["overall"] == pytest.approx(val.overall, abs=1e-6)


def test_masks_build_writes_a_bank_that_duplication_draws_from(tiny_data, tmp_path, capsys):
    from data.augment import MaskBank
    from tuner.cli import main

    assert main(["masks", "build", str(tiny_data), "--out", str(tmp_path / "bank")]) == 0
    bank = MaskBank.load(tmp_path / "bank.npz")
    assert {(organ, acc) for organ, acc, _ in bank.keys()} == {(o, a) for o in ("brain", "knee") for a in (4, 8)}
    assert "brain x8 width" in capsys.readouterr().out
    assert main(["masks", "build", str(tiny_data), "--out", str(tmp_path / "bank.npz")]) == 2
    assert "never overwritten" in capsys.readouterr().err

    config = TrialConfig.from_flat({**TINY_MODEL, "augment.duplication.enabled": True})
    data = TrialData(tiny_data, config.train, config.augment, mask_bank=tmp_path / "bank.npz")
    for item in (data.train[i] for i in range(len(data.train))):
        organ, acc = item.category.split("_x")
        width = item.mask.shape[2]
        candidates = bank.masks(organ, int(acc), width)
        assert any(torch.equal(item.mask.flatten(), torch.from_numpy(m)) for m in candidates), item.category


def test_a_fastmri_root_trains_through_the_same_loaders(tmp_path):
    import shutil

    from data.layout import open_split
    from tests.test_data_fastmri import write_fastmri_root

    root = write_fastmri_root(tmp_path / "fastmri")
    shutil.copytree(root / "multicoil_train", root / "multicoil_val")
    train_slices, val_slices = len(open_split(root, "train")), len(open_split(root, "val"))
    # The knee volume's k-space is zero-padded at its edges (as fastMRI's is): still fully sampled.
    config = TrialConfig.from_flat({**TINY_MODEL, "augment.mask.enabled": True, "augment.mraugment.enabled": True,
                                    "augment.compression.method": "scc",
                                    "augment.compression.num_virtual_coils": 3})
    data = TrialData(root, config.train, config.augment)
    assert len(data.train) == train_slices and val_slices > 0
    trainer = Trainer(config, total_epochs=1, device=torch.device("cpu"))
    result = trainer.run_epoch(data.train_loader(0), data.val_loader())
    assert np.isfinite(result.val.overall) and np.isfinite(result.train_loss)


def test_batches_over_slices_of_several_shapes_are_refused_before_the_search(tmp_path, capsys):
    from data.demo import write_demo_dataset
    from data.layout import open_split
    from tuner.cli import main
    from tuner.commands.demo_data import demo_spec
    from tuner.config.space import load_space as load
    from tuner.train.loaders import require_one_shape

    tiny = load(ROOT / "search_spaces" / "tiny.yaml")
    root = write_demo_dataset(tmp_path / "varied", demo_spec({**tiny.demo, "num_coils": [2, 8]}))
    with pytest.raises(ConfigError, match="train.batch_size: 2 needs training slices of one shape"):
        require_one_shape(open_split(root, "train").files, 2)
    require_one_shape(open_split(root, "train").files, 1)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.replace("search:", "train: {batch_size: {choice: [1, 2]}}\nsearch:"))
    assert main(["search", str(space), "--data", str(root), "--storage", str(tmp_path / "runs"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]) == 2
    assert "train.batch_size: 2 needs training slices of one shape" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
