"""Devices: every CUDA call gets a device torch accepts, CPU-only machines say so, states cross devices.

These hold the CUDA paths against torch's own device validation, which runs on a CPU-only torch too;
`benchmarks/gpu_check.py` runs the same paths on a card.
"""

import ast
import random

import numpy as np
import pytest
import torch
from torch.cuda._utils import _get_device_index

from tests.conftest import ROOT
from tuner.train import devices
from tuner.train.devices import DeviceError, cuda_index, memory_cap, resolve_device, rng_state, set_rng_state

GB = 10**9
# torch.cuda functions that need no device: asking whether there is one is how the CPU path is chosen.
DEVICE_FREE = {"is_available"}


def test_torch_refuses_an_index_less_cuda_device_and_every_cuda_call_gets_an_ordinal():
    """The bug that failed every trial on a card: `set_per_process_memory_fraction(f, torch.device("cuda"))`."""
    with pytest.raises(ValueError, match="specified index"):
        _get_device_index(torch.device("cuda"))
    fraction, device = memory_cap(torch.device("cuda"), 8 * GB, 80 * GB)
    assert fraction == pytest.approx(0.1)
    assert _get_device_index(device) == 0, "index-less means the current device: 0 before CUDA starts"
    assert _get_device_index(memory_cap(torch.device("cuda", 3), 8 * GB, 80 * GB)[1]) == 3
    assert memory_cap(torch.device("cuda", 0), 16 * GB, 8 * GB)[0] == 1.0, "a budget above the card caps nothing"
    assert cuda_index(torch.device("cuda", 2)) == 2
    with pytest.raises(ValueError, match="CUDA device"):
        cuda_index(torch.device("cpu"))


def test_cuda_is_called_only_through_tuner_devices():
    """So the index rule above covers every call: no other module calls a device-taking torch.cuda function."""
    offenders = []
    for folder in ("tuner", "models", "data", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "tuner" / "train" / "devices.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                        and node.value.attr == "cuda" and isinstance(node.value.value, ast.Name)
                        and node.value.value.id == "torch" and node.attr not in DEVICE_FREE):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} torch.cuda.{node.attr}")
    assert offenders == []


def test_devices_resolve_to_what_this_machine_has():
    assert resolve_device(None) == torch.device("cpu") == resolve_device("cpu") == resolve_device(torch.device("cpu"))
    for missing in ("cuda", "cuda:1", torch.device("cuda")):
        with pytest.raises(DeviceError, match="no CUDA device is available"):
            resolve_device(missing)
    for unknown in ("mps", "banana"):
        with pytest.raises(DeviceError, match="expected cpu, cuda or cuda:<index>"):
            resolve_device(unknown)


def test_cpu_only_helpers_do_nothing_off_cuda():
    cpu = torch.device("cpu")
    devices.cap_memory(cpu, 1)
    devices.synchronize(cpu)
    devices.release_cached_memory(cpu)
    assert devices.supports_bf16(cpu) is False and devices.device_name(cpu) == "the CPU"


@pytest.mark.skipif(torch.cuda.is_available(), reason="sizes the cards where there are none")
def test_the_card_size_used_for_packing_is_an_error_without_cards():
    """Asked on a node without a visible card (the driver's machine, a CPU node), it says so instead of min([])."""
    with pytest.raises(RuntimeError, match="no CUDA device is visible"):
        devices.smallest_card_bytes()


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_a_random_state_saved_on_a_card_restores_on_the_cpu():
    """A checkpoint written on a GPU resumes on a CPU: the card's generator state is kept but not needed."""
    state = rng_state(torch.device("cpu"))
    expected = _draws()
    assert "cuda" not in state
    # What torch.cuda.get_rng_state returns: a CPU byte tensor.
    card_state = {**state, "cuda": torch.zeros(16, dtype=torch.uint8)}
    set_rng_state(card_state, torch.device("cpu"))
    assert _draws() == expected
    set_rng_state(state, torch.device("cpu"))
    assert _draws() == expected
