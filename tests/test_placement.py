"""Trials are sized from the cluster's nodes: packed onto large cards, one per 8 GB card, by CPUs without GPUs, and a
trial no node can hold is an error before the search starts."""

import pytest

from tuner.config.space import load_space
from tuner.contract import SearchError, SpecError
from tuner.search.placement import NodeCapacity, gpus_per_trial, plan_trials


def test_an_80_gb_card_holds_eight_8_gb_trials_and_an_8_gb_card_one():
    h100 = plan_trials([NodeCapacity(cpus=16, gpus=1, gpu_memory_gb=79.1)], None, "auto", 8.0)
    assert h100.concurrency == 8 and h100.resources == {"cpu": 2, "gpu": 0.125}
    assert "8 trials per GPU (8 GB budget + 1 GB reserve each)" in h100.reason
    small = plan_trials([NodeCapacity(cpus=8, gpus=1, gpu_memory_gb=7.8)], None, "auto", 8.0)
    assert small.concurrency == 1 and small.resources == {"cpu": 8, "gpu": 1.0}


def test_a_four_gpu_box_runs_a_trial_per_card_or_packs_as_told():
    box = [NodeCapacity(cpus=32, gpus=4, gpu_memory_gb=24.0)]
    assert plan_trials(box, None, 1, 8.0).concurrency == 4
    packed = plan_trials(box, None, "auto", 8.0)
    assert packed.concurrency == 8 and packed.resources == {"cpu": 4, "gpu": 0.5}
    with pytest.raises(SearchError, match="4 trials of 8 GB .* do not fit a 24.0 GB card; at most 2 do"):
        plan_trials(box, None, 4, 8.0)


def test_shares_of_a_card_never_add_up_to_more_than_the_card():
    for per_gpu in range(1, 17):
        assert gpus_per_trial(per_gpu) * per_gpu <= 1.0


def test_cpu_trials_come_from_each_nodes_cpus_not_the_drivers_machine():
    two_nodes = [NodeCapacity(cpus=1), NodeCapacity(cpus=1)]
    plan = plan_trials(two_nodes, None, "auto", 8.0)
    assert plan.concurrency == 2 and plan.resources == {"cpu": 1}
    assert plan_trials([NodeCapacity(cpus=2)], 1, "auto", 8.0).concurrency == 2
    assert plan_trials([NodeCapacity(cpus=2)], None, "auto", 8.0).concurrency == 1
    with pytest.raises(SearchError, match="2 CPUs per trial, but the largest node of the cluster has 1"):
        plan_trials(two_nodes, 2, "auto", 8.0)


def test_a_cluster_with_nothing_to_offer_is_an_error():
    with pytest.raises(SearchError, match="offer no CPU and no GPU"):
        plan_trials([NodeCapacity(cpus=0)], None, "auto", 8.0)


def test_gpu_nodes_that_lack_the_cpus_asked_for_are_an_error():
    with pytest.raises(SearchError, match="no GPU node of the cluster has that many"):
        plan_trials([NodeCapacity(cpus=4, gpus=1, gpu_memory_gb=80.0), NodeCapacity(cpus=64)], 8, 1, 8.0)


@pytest.mark.parametrize("value", ["many", 0, 1.5, True])
def test_trials_per_gpu_is_auto_or_a_positive_integer(tmp_path, value):
    space = tmp_path / "s.yaml"
    space.write_text(f"name: s\nmodel: {{name: varnet}}\nresources: {{trials_per_gpu: {value}}}\n")
    with pytest.raises(SpecError, match="resources.trials_per_gpu: expected auto or an integer >= 1"):
        load_space(space)
