"""A plain reference for the MIG planner, written apart from it (STYLE rule 15).

It never places a requested list.  It lists every set of non-overlapping
placements a GPU can hold, within the compute and per-profile limits, as a
multiset of profile names; a request is feasible on N GPUs when it splits
into N of those multisets.
"""

from __future__ import annotations

import functools
from collections import Counter

from bulkhead.runtime.gpu import GpuModel, PlacedInstance, gpu_model

Config = tuple[tuple[str, int], ...]


@functools.cache
def valid_configs(key: str) -> frozenset[Config]:
    model = gpu_model(key)
    placements = [(p, s) for p in model.profiles for s in p.starts]
    found: set[Config] = set()

    def walk(i: int, used: frozenset[int], compute: int, chosen: tuple[str, ...]) -> None:
        if compute > model.compute_slices:
            return
        if i == len(placements):
            counts = Counter(chosen)
            if all(counts[p.name] <= p.max_count for p in model.profiles):
                found.add(as_config(counts))
            return
        walk(i + 1, used, compute, chosen)
        profile, start = placements[i]
        cells = frozenset(range(start, start + profile.memory_slices))
        if not cells & used and max(cells) < model.memory_slices:
            walk(i + 1, used | cells, compute + profile.compute_slices, (*chosen, profile.name))

    walk(0, frozenset(), 0, ())
    return frozenset(found)


def as_config(counts: Counter[str]) -> Config:
    return tuple(sorted((name, n) for name, n in counts.items() if n > 0))


def feasible(key: str, request: Counter[str], gpus: int) -> bool:
    """True when `request` splits into `gpus` multisets each of which one GPU can hold."""
    configs = valid_configs(key)
    if gpus == 1:
        return as_config(request) in configs
    for config in configs:
        part = Counter(dict(config))
        if all(request[name] >= n for name, n in part.items()) and feasible(
            key, request - part, gpus - 1
        ):
            return True
    return False


def assert_valid_layout(model: GpuModel, instances: tuple[PlacedInstance, ...]) -> None:
    """One GPU's instances obey every placement rule of the catalog."""
    used = [0] * model.memory_slices
    for instance in instances:
        profile = model.profile(instance.profile)
        assert instance.start in profile.starts
        assert instance.memory_slices == profile.memory_slices
        assert instance.compute_slices == profile.compute_slices
        assert instance.start + profile.memory_slices <= model.memory_slices
        for s in range(instance.start, instance.start + profile.memory_slices):
            used[s] += 1
    assert max(used, default=0) <= 1, "two instances share a memory slice"
    assert sum(i.compute_slices for i in instances) <= model.compute_slices
    counts = Counter(i.profile for i in instances)
    for name, n in counts.items():
        assert n <= model.profile(name).max_count
