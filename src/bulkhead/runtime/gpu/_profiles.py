"""The MIG profile catalog: which GPU instances each known GPU model offers, and where.

Every MIG-capable GPU in the catalog has 8 memory slices and 7 compute (SM)
slices.  A GPU instance profile takes a number of each and may start only at
certain memory-slice indices; it then occupies [start, start + memory_slices).
The figures come from the NVIDIA MIG User Guide, "Supported MIG Profiles"
(tables "GPU Instance Profiles on A100 / H100 / H200"), and the start
positions from its `nvidia-smi mig -lgipp` listing, which is the same on
GA100 and GH100:

    Profile ID 19 (1g, 1 memory slice)   Placements: {0,1,2,3,4,5,6}:1
    Profile ID 20 (1g+me)                Placements: {0,1,2,3,4,5,6}:1
    Profile ID 15 (1g, 2 memory slices)  Placements: {0,2,4,6}:2
    Profile ID 14 (2g)                   Placements: {0,2,4}:2
    Profile ID  9 (3g)                   Placements: {0,4}:4
    Profile ID  5 (4g)                   Placement : {0}:4
    Profile ID  0 (7g)                   Placement : {0}:8

Only the names change between models (they state each instance's memory).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bulkhead.errors import InvalidRequest

MEMORY_SLICES = 8
COMPUTE_SLICES = 7


@dataclass(frozen=True, slots=True)
class MigProfile:
    """A GPU instance profile: its slices, how many fit, and where each may start."""

    name: str
    compute_slices: int
    memory_slices: int
    max_count: int
    starts: tuple[int, ...]
    nvml_id: int

    def slices(self, start: int) -> range:
        """The memory slices an instance of this profile occupies when placed at `start`."""
        return range(start, start + self.memory_slices)


@dataclass(frozen=True, slots=True)
class GpuModel:
    """A GPU product as the planner knows it: a key such as `h100-80gb` and its profiles."""

    key: str
    title: str
    profiles: tuple[MigProfile, ...]
    memory_slices: int = MEMORY_SLICES
    compute_slices: int = COMPUTE_SLICES

    def profile(self, name: str) -> MigProfile:
        """The profile called `name`; an unknown name raises `InvalidRequest` listing the known."""
        for profile in self.profiles:
            if profile.name == name:
                return profile
        known = ", ".join(p.name for p in self.profiles)
        raise InvalidRequest(
            f"The {self.title} has no MIG profile '{name}'; it has {known}.", param="profiles"
        )


# (compute slices, memory slices, max count, starts, NVML profile id) in the
# order of the -lgipp listing above; the names per model follow below.
_SHAPES: tuple[tuple[int, int, int, tuple[int, ...], int], ...] = (
    (1, 1, 7, (0, 1, 2, 3, 4, 5, 6), 19),
    (1, 1, 1, (0, 1, 2, 3, 4, 5, 6), 20),  # "+me": the one 1g instance with media engines
    (1, 2, 4, (0, 2, 4, 6), 15),
    (2, 2, 3, (0, 2, 4), 14),
    (3, 4, 2, (0, 4), 9),
    (4, 4, 1, (0,), 5),
    (7, 8, 1, (0,), 0),
)


def _model(key: str, title: str, names: tuple[str, ...]) -> GpuModel:
    profiles = tuple(
        MigProfile(name, compute, memory, count, starts, nvml_id)
        for name, (compute, memory, count, starts, nvml_id) in zip(names, _SHAPES, strict=True)
    )
    return GpuModel(key, title, profiles)


_A100_40 = ("1g.5gb", "1g.5gb+me", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb")
_X100_80 = ("1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb")
_H100_94 = ("1g.12gb", "1g.12gb+me", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb")
_H200_141 = ("1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb")

GPU_MODELS: Mapping[str, GpuModel] = MappingProxyType(
    {
        m.key: m
        for m in (
            _model("a100-40gb", "A100 40GB", _A100_40),
            _model("a100-80gb", "A100 80GB", _X100_80),
            _model("h100-80gb", "H100 80GB", _X100_80),
            _model("h100-94gb", "H100 94GB (H100 NVL)", _H100_94),
            _model("h200-141gb", "H200 141GB", _H200_141),
        )
    }
)


def gpu_model(key: str) -> GpuModel:
    """The catalog entry for `key` (case-insensitive); an unknown key raises `InvalidRequest`."""
    found = GPU_MODELS.get(key.strip().lower())
    if found is None:
        known = ", ".join(GPU_MODELS)
        raise InvalidRequest(f"Unknown GPU model '{key}'; known: {known}.", param="gpu")
    return found


_FAMILY = re.compile(r"\b(A100|H100|H200)\b")
_GIB = 1024**3


def model_key_for(name: str, memory_total: int) -> str | None:
    """The catalog key for a GPU that NVML names `name` with `memory_total` bytes, if any.

    The product name alone does not tell the memory size (e.g. "NVIDIA H100
    PCIe" is 80 GB, "NVIDIA H100 NVL" 94 GB), so the reported total decides it.
    """
    family = _FAMILY.search(name)
    if family is None:
        return None
    gib = memory_total / _GIB
    match family.group(1):
        case "A100":
            return "a100-40gb" if gib < 60 else "a100-80gb"
        case "H100":
            return "h100-80gb" if gib < 88 else "h100-94gb"
        case _:
            return "h200-141gb"
