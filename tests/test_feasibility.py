"""The memory probe: real allocations on this machine's CPU, a real budget, real out-of-memory errors."""

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from tuner.config.trial import TrialConfig
from tuner.train.engine import Trainer
from tuner.train.loaders import TrialData
from tuner.train.memory import MIB, MemoryMeter, describe_out_of_memory, format_bytes, is_out_of_memory, memory_budget
from tuner.train.probe import OutOfBudget, fit_to_budget, measure_training_step


def _trainer(tiny_data, batch_size=1, chans=4):
    config = TrialConfig.from_flat({
        "model.name": "varnet", "model.num_cascades": 1, "model.chans": chans, "model.pools": 2,
        "model.sens_chans": 2, "model.sens_pools": 2, "train.batch_size": batch_size,
    })
    trainer = Trainer(config, total_epochs=1, device=torch.device("cpu"))
    return trainer, TrialData(tiny_data, config.train)


def test_the_cpu_meter_sees_a_peak_and_forgets_it_on_reset():
    meter = MemoryMeter(torch.device("cpu"))
    meter.reset_peak()
    before = meter.current_bytes()
    block = torch.ones(64 * MIB // 4)
    del block
    assert meter.peak_bytes() - before >= 60 * MIB
    meter.reset_peak()
    assert meter.peak_bytes() - meter.current_bytes() < 16 * MIB


def test_a_step_is_measured_and_leaves_the_trainer_as_it_was(tiny_data):
    trainer, data = _trainer(tiny_data)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rng = torch.get_rng_state()
    step = measure_training_step(trainer, data.largest_batch(), budget_bytes=2**30)
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    # Weights, gradients and two optimiser moments at least, plus activations.
    assert step.peak_bytes > 4 * params
    assert step.shape == (1, 4, 64, 48) and step.seconds > 0
    assert all(p.grad is None for p in trainer.model.parameters())
    assert not trainer.optimizer.state
    assert torch.equal(torch.get_rng_state(), rng)
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, weights[key]), key


def _step_of_batch_256(tiny_data):
    """In a process of its own: running out under the CPU limit may leave oneDNN unusable afterwards."""
    trainer, data = _trainer(tiny_data, batch_size=256)
    with pytest.raises(OutOfBudget) as caught:
        measure_training_step(trainer, data.largest_batch(), budget_bytes=100 * MIB)
    # The limit is lifted again: the same allocation now succeeds.
    lifted = torch.empty(256 * MIB, dtype=torch.uint8).numel() == 256 * MIB
    return str(caught.value), lifted


def test_a_step_too_large_for_the_budget_raises_a_real_out_of_memory(tiny_data):
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        message, lifted = pool.submit(_step_of_batch_256, tiny_data).result()
    assert re.search(r"256x4x64x48 slice does not fit the 100 MB budget \((an allocation of [\d.]+ [KMG]i?B "
                     r"failed|could not create a primitive)\)", message), message
    assert lifted


def test_a_measured_peak_over_the_budget_is_out_of_budget(tiny_data):
    trainer, data = _trainer(tiny_data, batch_size=64)
    peak = measure_training_step(trainer, data.largest_batch(), budget_bytes=None).peak_bytes
    with pytest.raises(OutOfBudget, match="measured peak"):
        measure_training_step(trainer, data.largest_batch(), budget_bytes=int(peak * 0.7))


def test_out_of_memory_is_recognised_by_kind_not_by_luck():
    with pytest.raises(RuntimeError) as caught, memory_budget(torch.device("cpu"), 16 * MIB):
        torch.empty(2**30, dtype=torch.uint8)
    assert is_out_of_memory(caught.value)
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))
    assert describe_out_of_memory(caught.value) == "an allocation of 1 GB failed"
    assert describe_out_of_memory(torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79 GiB")) == \
        "an allocation of 2.00 GiB failed"


def test_memory_is_quoted_the_way_people_quote_it():
    assert format_bytes(8 * 2**30) == "8 GB"
    assert format_bytes(1.5 * 2**30) == "1.5 GB"
    assert format_bytes(40 * MIB) == "40 MB"


def _deep_config(checkpointing=False):
    return TrialConfig.from_flat({
        "model.name": "varnet", "model.num_cascades": 6, "model.chans": 8, "model.pools": 2, "model.sens_chans": 2,
        "model.sens_pools": 2, "model.checkpointing": checkpointing, "train.batch_size": 8,
    })


def test_a_config_that_fits_only_with_checkpointing_gets_it(tiny_data):
    # Measured here: about 170 MB without checkpointing, about 95 MB with it.
    batch = TrialData(tiny_data, _deep_config().train).largest_batch()
    cpu = torch.device("cpu")
    trainer, step = fit_to_budget(_deep_config(), 1, batch, 130 * MIB, auto_checkpointing=True, device=cpu)
    assert trainer.config.model.checkpointing is True
    assert step.peak_bytes < 130 * MIB
    with pytest.raises(OutOfBudget):
        fit_to_budget(_deep_config(), 1, batch, 130 * MIB, auto_checkpointing=False, device=cpu)
    # Within budget nothing changes.
    trainer, _ = fit_to_budget(_deep_config(), 1, batch, 2**30, auto_checkpointing=True, device=cpu)
    assert trainer.config.model.checkpointing is False
