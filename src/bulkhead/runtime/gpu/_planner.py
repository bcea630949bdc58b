"""The MIG planner: place a multiset of GPU instance profiles on one or more GPUs, or say why not.

A layout is valid when every instance starts at one of its profile's allowed
start positions, no two instances on a GPU share a memory slice, the compute
slices on a GPU add up to at most 7, and no GPU holds more instances of a
profile than the profile's maximum count.  With 8 memory slices per GPU an
exhaustive search is cheap on one GPU; over several, the request is split
into per-GPU shares with failed splits remembered, so that stays cheap too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bulkhead.errors import InvalidRequest
from bulkhead.runtime.gpu._profiles import GpuModel, MigProfile

MAX_GPUS = 16
MAX_INSTANCES_PER_GPU = 7


class NoMigLayout(InvalidRequest):
    """No valid layout exists; `reasons` says why, one sentence each."""

    code = "no_mig_layout"

    def __init__(self, reasons: Sequence[str]):
        self.reasons = tuple(reasons)
        super().__init__("No MIG layout exists: " + " ".join(self.reasons), param="profiles")


@dataclass(frozen=True, slots=True)
class PlacedInstance:
    """One GPU instance in a layout: its profile and the memory slices it starts at."""

    profile: str
    start: int
    memory_slices: int
    compute_slices: int

    @property
    def end(self) -> int:
        return self.start + self.memory_slices


@dataclass(frozen=True, slots=True)
class GpuLayout:
    """The instances placed on one GPU (numbered 0..N-1 within the plan), by start."""

    gpu: int
    instances: tuple[PlacedInstance, ...]

    @property
    def memory_used(self) -> int:
        return sum(i.memory_slices for i in self.instances)

    @property
    def compute_used(self) -> int:
        return sum(i.compute_slices for i in self.instances)

    def counts(self) -> dict[str, int]:
        """Instances per profile name."""
        return dict(Counter(i.profile for i in self.instances))


@dataclass(frozen=True, slots=True)
class MigPlan:
    """A valid layout of the requested profiles over `len(layouts)` GPUs of one model."""

    model: GpuModel
    layouts: tuple[GpuLayout, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "gpu": self.model.key,
            "gpus": [
                {
                    "gpu": layout.gpu,
                    "memory_slices_used": layout.memory_used,
                    "compute_slices_used": layout.compute_used,
                    "instances": [
                        {
                            "profile": i.profile,
                            "start": i.start,
                            "size": i.memory_slices,
                            "compute_slices": i.compute_slices,
                        }
                        for i in layout.instances
                    ],
                }
                for layout in self.layouts
            ],
        }


def parse_profiles(text: str) -> tuple[str, ...]:
    """`3g.40gb,2g.20gb,1g.10gb:2` → each profile name once per instance wanted.

    `NAME:COUNT` asks for COUNT instances; repeating a name works as well.
    """
    names: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, count = item.partition(":")
        names.extend([name.strip()] * _count(count, item))
    if not names:
        raise InvalidRequest("Name at least one MIG profile.", param="profiles")
    return tuple(names)


def _count(text: str, item: str) -> int:
    if not text:
        return 1
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_INSTANCES_PER_GPU * MAX_GPUS:
        raise InvalidRequest(f"Bad count in '{item}': use NAME or NAME:COUNT.", param="profiles")
    return int(text)


def plan(model: GpuModel, profiles: Iterable[str], *, gpus: int = 1) -> MigPlan:
    """A valid layout of `profiles` on `gpus` GPUs of `model`, or `NoMigLayout` saying why."""
    if not 1 <= gpus <= MAX_GPUS:
        raise InvalidRequest(f"The number of GPUs must be 1 to {MAX_GPUS}.", param="gpus")
    wanted = _ordered([model.profile(name) for name in profiles])
    if not wanted:
        raise InvalidRequest("Name at least one MIG profile.", param="profiles")
    reasons = _capacity_reasons(model, wanted, gpus)
    if reasons:
        raise NoMigLayout(reasons)
    budget = _Budget(MAX_SEARCH_STEPS)
    try:
        found = _search(model, wanted, gpus, budget)
        if found is None:
            raise NoMigLayout([_placement_reason(model, wanted, gpus, budget)])
    except _GaveUp:
        raise InvalidRequest(
            f"The layout search over {gpus} GPUs is too large to finish; "
            "plan the GPUs in smaller groups.",
            param="gpus",
            code="mig_search_too_large",
        ) from None
    return MigPlan(model, found)


def _ordered(profiles: list[MigProfile]) -> tuple[MigProfile, ...]:
    """Largest first: big instances have the fewest starts, so failures show early."""
    return tuple(sorted(profiles, key=lambda p: (-p.memory_slices, -p.compute_slices, p.name)))


def _capacity_reasons(model: GpuModel, wanted: Sequence[MigProfile], gpus: int) -> list[str]:
    """What the request needs beyond the GPUs' totals, before any placement is tried."""
    reasons: list[str] = []
    on = _on(model, gpus)
    memory = sum(p.memory_slices for p in wanted)
    if memory > model.memory_slices * gpus:
        reasons.append(
            f"It needs {memory} of {model.memory_slices * gpus} memory slices {on} "
            f"({_slice_sum(wanted, 'memory')})."
        )
    compute = sum(p.compute_slices for p in wanted)
    if compute > model.compute_slices * gpus:
        reasons.append(
            f"It needs {compute} of {model.compute_slices * gpus} compute slices {on} "
            f"({_slice_sum(wanted, 'compute')})."
        )
    for name, count in Counter(p.name for p in wanted).items():
        limit = model.profile(name).max_count
        if count > limit * gpus:
            per = "" if gpus == 1 else " per GPU"
            reasons.append(f"It asks for {count} x {name}; the limit is {limit}{per} {on}.")
    return reasons


def _on(model: GpuModel, gpus: int) -> str:
    return f"on one {model.title}" if gpus == 1 else f"on {gpus} x {model.title}"


def _slice_sum(wanted: Sequence[MigProfile], kind: str) -> str:
    parts = []
    for name, count in Counter(p.name for p in wanted).items():
        profile = next(p for p in wanted if p.name == name)
        size = profile.memory_slices if kind == "memory" else profile.compute_slices
        parts.append(f"{count} x {name} = {count * size}" if count > 1 else f"{name} = {size}")
    return ", ".join(parts)


# The search ------------------------------------------------------------------------------
#
# One GPU: place the instances, largest first, at each allowed start in turn.
# Several GPUs: list the parts of the request one GPU can lay out, then split
# the request into one such share per GPU, fullest shares first, remembering
# the (what is left, GPUs left) pairs that failed.

# Splitting among GPUs is bin packing: a request that fills every slice but
# cannot be split (e.g. more "+me" instances than 1-slice partners for them)
# can take exponential time to refute.  The search gives up after this many
# shares tried (a second or two) rather than hold a caller for minutes.
MAX_SEARCH_STEPS = 100_000


class _GaveUp(Exception):
    """The search spent its budget without an answer either way."""


@dataclass(slots=True)
class _Budget:
    """Steps left to one `plan` call, shared by the search and the explanation of a failure."""

    steps: int

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise _GaveUp


def _search(
    model: GpuModel, wanted: tuple[MigProfile, ...], gpus: int, budget: _Budget
) -> tuple[GpuLayout, ...] | None:
    if gpus == 1:
        placed: list[PlacedInstance] = []
        found = _place(model, wanted, 0, _EMPTY, placed)
        shares: list[tuple[PlacedInstance, ...]] | None = [tuple(placed)] if found else None
    else:
        counts = tuple(sum(w is p for w in wanted) for p in model.profiles)
        shares = _Split(model, counts, budget).run(counts, gpus)
    if shares is None:
        return None
    return tuple(
        GpuLayout(n, tuple(sorted(placed, key=lambda i: i.start)))
        for n, placed in enumerate(shares)
    )


# Instances per profile, in the model's catalog order.
_Counts = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Share:
    """What one GPU may hold: its counts, slice totals, and a layout the placer found."""

    counts: _Counts
    memory: int
    compute: int
    placed: tuple[PlacedInstance, ...]


class _Split:
    """Dividing a request among GPUs: the shares one GPU can hold, and the splits that failed."""

    def __init__(self, model: GpuModel, request: _Counts, budget: _Budget):
        self.model = model
        self.budget = budget
        self.shares = _shares(model, request)
        self.failed: set[tuple[_Counts, int]] = set()

    def run(self, left: _Counts, gpus: int) -> list[tuple[PlacedInstance, ...]] | None:
        if not any(left):
            return [()] * gpus
        slack = _slack(self.model, left, gpus)
        if gpus == 0 or slack is None or (left, gpus) in self.failed:
            return None
        least_memory = self.model.memory_slices - slack[0]
        least_compute = self.model.compute_slices - slack[1]
        for share in self.shares:
            if share.memory < least_memory:
                break
            if share.compute < least_compute or any(map(int.__gt__, share.counts, left)):
                continue
            self.budget.spend()
            rest = self.run(tuple(map(int.__sub__, left, share.counts)), gpus - 1)
            if rest is not None:
                return [share.placed, *rest]
        self.failed.add((left, gpus))
        return None


def _slack(model: GpuModel, left: _Counts, gpus: int) -> tuple[int, int] | None:
    """(memory, compute) slices to spare when `left` goes on `gpus` GPUs; None if it cannot.

    Every GPU's unused slices come out of this slack, so a share that leaves
    more unused than the slack allows is not worth trying.
    """
    memory, compute = model.memory_slices * gpus, model.compute_slices * gpus
    for profile, n in zip(model.profiles, left, strict=True):
        if n > profile.max_count * gpus:
            return None
        memory -= n * profile.memory_slices
        compute -= n * profile.compute_slices
    return (memory, compute) if memory >= 0 and compute >= 0 else None


def _shares(model: GpuModel, request: _Counts) -> list[_Share]:
    """Every non-empty part of `request` that one GPU can lay out, fullest first."""
    found: list[_Share] = []

    def walk(i: int, counts: _Counts, memory: int, compute: int) -> None:
        if i == len(model.profiles):
            wanted = [p for p, n in zip(model.profiles, counts, strict=True) for _ in range(n)]
            placed: list[PlacedInstance] = []
            if wanted and _place(model, _ordered(wanted), 0, _EMPTY, placed):
                found.append(_Share(counts, memory, compute, tuple(placed)))
            return
        profile = model.profiles[i]
        for n in range(min(request[i], profile.max_count) + 1):
            m, c = memory + n * profile.memory_slices, compute + n * profile.compute_slices
            if m > model.memory_slices or c > model.compute_slices:
                break
            walk(i + 1, (*counts, n), m, c)

    walk(0, (), 0, 0)
    return sorted(found, key=lambda share: (-share.memory, -share.compute))


# A GPU's state while placing: (occupied memory slices as a bit mask,
# compute slices used, sorted (profile name, count) pairs).
_State = tuple[int, int, tuple[tuple[str, int], ...]]
_EMPTY: _State = (0, 0, ())


def _place(
    model: GpuModel,
    wanted: tuple[MigProfile, ...],
    index: int,
    state: _State,
    placed: list[PlacedInstance],
) -> bool:
    if index == len(wanted):
        return True
    profile = wanted[index]
    for start in profile.starts:
        after = _add(model, profile, start, state)
        if after is None:
            continue
        placed.append(
            PlacedInstance(profile.name, start, profile.memory_slices, profile.compute_slices)
        )
        if _place(model, wanted, index + 1, after, placed):
            return True
        placed.pop()
    return False


def _add(model: GpuModel, profile: MigProfile, start: int, state: _State) -> _State | None:
    mask, compute, counts = state
    bits = sum(1 << s for s in profile.slices(start))
    if mask & bits or start + profile.memory_slices > model.memory_slices:
        return None
    if compute + profile.compute_slices > model.compute_slices:
        return None
    held = dict(counts)
    if held.get(profile.name, 0) >= profile.max_count:
        return None
    held[profile.name] = held.get(profile.name, 0) + 1
    return mask | bits, compute + profile.compute_slices, tuple(sorted(held.items()))


# Explaining a placement failure ------------------------------------------------------------


def _placement_reason(
    model: GpuModel, wanted: tuple[MigProfile, ...], gpus: int, budget: _Budget
) -> str:
    """Name a smallest set of the requested instances that cannot be placed together.

    Dropping instances one at a time while the rest still fails leaves a core
    in which every instance matters; its allowed starts are what collide.
    """
    core = list(wanted)
    for profile in reversed(wanted):
        trial = list(core)
        trial.remove(profile)
        if trial and _refuted(model, _ordered(trial), gpus, budget):
            core = trial
    rules = "; ".join(
        f"{p.name} starts at {_or_list(p.starts)}, at most {p.max_count} per GPU"
        for p in {p.name: p for p in core}.values()
    )
    how = (
        "cannot all be placed at allowed starts without overlapping memory slices"
        if gpus == 1
        else "cannot be divided among the GPUs so that each GPU's share has a valid layout"
    )
    return (
        f"{_and_list(_counted(core))} fit the slice totals {_on(model, gpus)} but {how} ({rules})."
    )


def _refuted(model: GpuModel, wanted: tuple[MigProfile, ...], gpus: int, budget: _Budget) -> bool:
    """True when the search shows `wanted` has no layout (running out of budget proves nothing)."""
    try:
        return _search(model, wanted, gpus, budget) is None
    except _GaveUp:
        return False


def _counted(profiles: Sequence[MigProfile]) -> list[str]:
    counts = Counter(p.name for p in profiles)
    return [f"{n} x {name}" if n > 1 else name for name, n in counts.items()]


def _or_list(values: Sequence[int]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _and_list(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
