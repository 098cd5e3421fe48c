"""How many trials run at once, and what each asks Ray for, from the nodes of the cluster.

Trials are sized from the nodes, never from the machine the driver runs on: a trial that asks for more
than any one node has would wait for ever. On GPUs, `trials_per_gpu` trials share a card through Ray's
fractional GPUs, each capped at its memory budget (docs/scaling.md); without GPUs, `cpus_per_trial`
decides how many trials a node holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tuner.contract import SearchError

# Per trial process on a card, beyond its budget: the CUDA context and the allocator's slack, which the
# budget's cap does not count.
GPU_RESERVE_GB = 1.0
AUTO = "auto"


@dataclass(frozen=True)
class NodeCapacity:
    """What one alive Ray node offers to trials."""

    cpus: int
    gpus: int = 0
    gpu_memory_gb: float | None = None  # the smallest card on the node; None when unknown or no GPU


@dataclass(frozen=True)
class TrialPlacement:
    """What each trial asks Ray for, how many run at once, and why, in words for the console."""

    resources: dict[str, float]
    concurrency: int
    reason: str


def gpus_per_trial(trials_per_gpu: int) -> float:
    """The GPU fraction of one of `trials_per_gpu` trials sharing a card, rounded down so that they all fit."""
    return math.floor(10_000 / trials_per_gpu) / 10_000


def packed_trials(card_gb: float, budget_gb: float) -> int:
    """How many trials of `budget_gb` fit on a card of `card_gb` with their reserves; at least one."""
    return max(1, math.floor(card_gb / (budget_gb + GPU_RESERVE_GB)))


def plan_trials(nodes: Sequence[NodeCapacity], cpus_per_trial: int | None, trials_per_gpu: int | str,
                budget_gb: float) -> TrialPlacement:
    """The placement of trials on `nodes`; a SearchError when no node can hold one."""
    if not nodes:
        raise SearchError("the Ray cluster has no alive node")
    gpu_nodes = [node for node in nodes if node.gpus > 0]
    if gpu_nodes:
        return _on_gpus(gpu_nodes, cpus_per_trial, trials_per_gpu, budget_gb)
    largest = max(node.cpus for node in nodes)
    if largest == 0:
        raise SearchError("the Ray cluster's nodes offer no CPU and no GPU to trials")
    cpus = cpus_per_trial or largest
    if cpus > largest:
        raise SearchError(f"resources.cpus_per_trial: {cpus} CPUs per trial, but the largest node of the cluster "
                          f"has {largest}")
    concurrency = sum(node.cpus // cpus for node in nodes)
    where = f"{len(nodes)} nodes" if len(nodes) > 1 else "1 node"
    return TrialPlacement({"cpu": cpus}, concurrency,
                          f"{sum(node.cpus for node in nodes)} CPUs on {where}, {cpus} per trial, no GPU")


def _on_gpus(nodes: Sequence[NodeCapacity], cpus_per_trial: int | None, trials_per_gpu: int | str,
             budget_gb: float) -> TrialPlacement:
    known = [node.gpu_memory_gb for node in nodes if node.gpu_memory_gb is not None]
    card_gb = min(known) if known else None
    if trials_per_gpu == AUTO:
        per_gpu = 1 if card_gb is None else packed_trials(card_gb, budget_gb)
    else:
        per_gpu = int(trials_per_gpu)
        if card_gb is not None and per_gpu > 1 and per_gpu * (budget_gb + GPU_RESERVE_GB) > card_gb:
            raise SearchError(
                f"resources.trials_per_gpu: {per_gpu} trials of {budget_gb:g} GB (+ {GPU_RESERVE_GB:g} GB reserve "
                f"each) do not fit a {card_gb:.1f} GB card; at most {packed_trials(card_gb, budget_gb)} do")
    slots = [node.gpus * per_gpu for node in nodes]
    cpus = cpus_per_trial or max(1, min(node.cpus // slot for node, slot in zip(nodes, slots, strict=True)))
    concurrency = sum(min(slot, node.cpus // cpus) for node, slot in zip(nodes, slots, strict=True))
    if concurrency == 0:
        raise SearchError(f"resources.cpus_per_trial: {cpus} CPUs per trial, but no GPU node of the cluster has "
                          f"that many")
    cards = sum(node.gpus for node in nodes)
    size = "of unknown size" if card_gb is None else f"of {card_gb:.0f} GB"
    return TrialPlacement(
        {"cpu": cpus, "gpu": gpus_per_trial(per_gpu)}, concurrency,
        f"{cards} GPU{'s' if cards > 1 else ''} {size} on {len(nodes)} node{'s' if len(nodes) > 1 else ''}, "
        f"{per_gpu} trial{'s' if per_gpu > 1 else ''} per GPU ({budget_gb:g} GB budget + {GPU_RESERVE_GB:g} GB "
        f"reserve each), {cpus} CPU{'s' if cpus > 1 else ''} per trial")
