"""The Ray cluster a search runs on: joining it (or starting a local one), what its workers are given, and what
its nodes offer to trials."""

from __future__ import annotations

import math

import ray
from ray.exceptions import RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tuner.search.placement import NodeCapacity
from tuner.tracking.outbox import PATIENCE_ENV, patience_s
from tuner.train import devices
from tuner.train.memory import GIB


def connect_ray(address: str | None) -> bool:
    """Join the given cluster, or start a local Ray; True when this process started it."""
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": worker_env()}
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
        return False
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="WARNING",
             runtime_env=runtime_env)
    return True


def worker_env() -> dict[str, str]:
    """What every trial's worker process, on any node, is given: the tracking patience, and how long a reused
    worker waits for its previous trial to end.

    Tune hands a finished trial's worker the next trial only once the function has returned, and fails
    the next trial if that takes longer than 2 s (its default). The last MLflow writes of a trial may
    wait that long for a tracking server, so the wait covers the patience.
    """
    patience = patience_s()
    return {PATIENCE_ENV: repr(patience), "TUNE_FUNCTION_THREAD_TIMEOUT_S": str(math.ceil(patience) + 60)}


def cluster_nodes(probe_gpus: bool) -> list[NodeCapacity]:
    """The alive nodes of the connected Ray cluster; with `probe_gpus`, each GPU node's smallest card, measured
    by a task on that node (Ray knows how many GPUs a node has, not their memory)."""
    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        offered = node.get("Resources", {})
        gpus = int(offered.get("GPU", 0))
        memory = None
        if gpus and probe_gpus:
            on_node = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            try:
                memory = ray.get(_smallest_card_gb.options(num_gpus=gpus, scheduling_strategy=on_node).remote())
            except RayTaskError:
                memory = None  # a node whose torch cannot see its cards: one trial per card, as before packing
        nodes.append(NodeCapacity(cpus=int(offered.get("CPU", 0)), gpus=gpus, gpu_memory_gb=memory))
    return nodes


@ray.remote(num_cpus=0)
def _smallest_card_gb() -> float:
    return devices.smallest_card_bytes() / GIB
