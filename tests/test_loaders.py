"""Trial loaders: workers that suit the device, and persistent workers that draw as the training process would."""

import torch

from tuner.config.trial import TrialConfig
from tuner.train.loaders import TrialData, loader_workers

CARD = torch.device("cuda", 0)
AUGMENTED = {
    "model.name": "varnet", "model.num_cascades": 1, "model.chans": 2, "model.pools": 2, "model.sens_chans": 2,
    "model.sens_pools": 2, "train.train_slices_per_epoch": 6,
    "augment.mraugment.enabled": True, "augment.mraugment.schedule.kind": "linear",
    "augment.mraugment.schedule.ramp_epochs": 2, "augment.mask.enabled": True,
    "augment.mask.schedule.kind": "constant", "augment.mask.schedule.p_max": 0.5,
    "augment.duplication.enabled": True,
}


def test_workers_default_to_none_on_the_cpu_and_all_cpus_but_one_on_a_card():
    assert loader_workers("auto", torch.device("cpu"), cpus=8) == 0
    assert loader_workers("auto", CARD, cpus=8) == 7
    assert loader_workers("auto", CARD, cpus=1) == 0
    assert loader_workers(3, torch.device("cpu"), cpus=8) == 3


def test_a_card_gets_pinned_memory_and_workers_kept_across_epochs(tiny_data):
    config = TrialConfig.from_flat(AUGMENTED)
    data = TrialData(tiny_data, config.train, config.augment, device=CARD, cpus=3)
    loader = data.train_loader(0)
    assert (data.workers, loader.num_workers, loader.pin_memory, loader.persistent_workers) == (2, 2, True, True)
    assert data.train_loader(1) is loader and data.val_loader().pin_memory
    cpu = TrialData(tiny_data, config.train, config.augment, device=torch.device("cpu"), cpus=3)
    assert (cpu.workers, cpu.train_loader(0).pin_memory) == (0, False)


def test_persistent_workers_see_each_epoch_as_the_training_process_does(tiny_data):
    """The epoch (and the validation losses) travel with each sampled index, so worker copies never go stale."""
    config = TrialConfig.from_flat(AUGMENTED)
    in_process = TrialData(tiny_data, config.train, config.augment)
    workers = TrialData(tiny_data, TrialConfig.from_flat({**AUGMENTED, "train.num_workers": 2}).train,
                        config.augment)
    assert workers.train_loader(0).persistent_workers
    fired = []
    for epoch in range(3):
        losses = [0.5 - 0.1 * e for e in range(epoch)]
        expected = list(in_process.train_loader(epoch, losses))
        got = list(workers.train_loader(epoch, losses))
        assert len(got) == len(expected) == 6
        for a, b in zip(got, expected, strict=True):
            assert torch.equal(a.image_transform, b.image_transform) and torch.equal(a.mask, b.mask)
            assert a.category == b.category and torch.equal(a.slice_idx, b.slice_idx)
        fired.append(sum(bool(b.image_transform.any()) for b in expected))
    assert fired[0] == 0 and fired[2] > 0, "the linear schedule starts at 0 and has ramped up by epoch 2"


def test_a_budgeted_epoch_draws_the_same_slices_as_before(tiny_data):
    """The sampler keeps torch's RandomSampler order, so seeded runs train on the slices they always did."""
    config = TrialConfig.from_flat({k: v for k, v in AUGMENTED.items() if not k.startswith("augment")})
    data = TrialData(tiny_data, config.train)
    generator = torch.Generator().manual_seed(config.train.seed * 100_003 + 4)
    order = list(torch.utils.data.RandomSampler(data.train, num_samples=6, generator=generator))
    assert [key.index for key in (data.train_loader(4).sampler)] == order
