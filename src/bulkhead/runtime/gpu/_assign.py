"""Which device a worker gets, by tier, and the environment that pins it there.

A worker sees exactly one device, named by UUID in `CUDA_VISIBLE_DEVICES`:
a MIG device (`MIG-…`) for a `mig` tenant, a whole GPU (`GPU-…`) for a
`dedicated` tenant, a GPU (or a MIG instance set aside for the shared pool)
under a per-process memory cap for `shared` workers.  Never an index: indices
change with enumeration order and with MIG reconfiguration, UUIDs do not.
Whatever GPU selection the gateway itself inherited is dropped, never passed
on.  The memory cap is applied by the worker to PyTorch's allocator
(`torch.cuda.set_per_process_memory_fraction`); it bounds what PyTorch
allocates, it is not a hardware partition — that is what MIG is for.
"""

from __future__ import annotations

import enum
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bulkhead.domain import Tier
from bulkhead.errors import Conflict, InvalidRequest
from bulkhead.runtime.gpu._nvml import GpuInventory

MEMORY_FRACTION_ENV = "BULKHEAD_GPU_MEMORY_FRACTION"

# Variables that select or share GPUs: none of them is ever inherited by a worker.
GPU_SELECTION_ENV = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        "GPU_DEVICE_ORDINAL",
        "HIP_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "NVIDIA_MIG_CONFIG_DEVICES",
        "NVIDIA_MIG_MONITOR_DEVICES",
        "CUDA_MPS_PIPE_DIRECTORY",
        "CUDA_MPS_LOG_DIRECTORY",
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
        MEMORY_FRACTION_ENV,
    }
)
# An empty CUDA_VISIBLE_DEVICES hides every GPU: the environment of a worker without one.
NO_GPU_ENV: Mapping[str, str] = {"CUDA_VISIBLE_DEVICES": ""}

_UUID = re.compile(r"(GPU|MIG)-[0-9A-Za-z/-]{1,96}")


class DeviceNotAllowed(InvalidRequest):
    """The device does not suit the tier (or the request for it is malformed)."""

    code = "device_not_allowed"


class AssignmentKind(enum.StrEnum):
    MIG_INSTANCE = "mig-instance"
    WHOLE_GPU = "whole-gpu"
    SHARED_GPU = "shared-gpu"


@dataclass(frozen=True, slots=True)
class Device:
    """A device a worker can be pinned to: a MIG device, or a whole GPU.

    `mig_enabled` is about a whole GPU: with MIG mode on, CUDA cannot use it
    whole, only its MIG devices.
    """

    uuid: str
    is_mig: bool
    mig_enabled: bool = False
    memory_total: int = 0
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceAssignment:
    """Where one worker runs: a device UUID and, for shared GPUs, its memory fraction."""

    kind: AssignmentKind
    uuid: str
    memory_fraction: float | None = None

    def env(self) -> dict[str, str]:
        """The variables that pin a worker here; merge with `worker_env`, which drops the rest."""
        out = {"CUDA_VISIBLE_DEVICES": self.uuid}
        if self.memory_fraction is not None:
            out[MEMORY_FRACTION_ENV] = repr(self.memory_fraction)
        return out


def devices(inventory: GpuInventory) -> tuple[Device, ...]:
    """Every device in `inventory`: each GPU (flagged when in MIG mode) and each MIG device."""
    found: list[Device] = []
    for gpu in inventory.gpus:
        found.append(Device(gpu.uuid, False, bool(gpu.mig_current), gpu.memory_total))
        for gi in gpu.gpu_instances:
            found.extend(
                Device(ci.uuid, True, memory_total=ci.memory_total or 0, profile=ci.profile)
                for ci in gi.compute_instances
            )
    return tuple(found)


def assign(tier: Tier, device: Device, *, memory_fraction: float | None = None) -> DeviceAssignment:
    """The assignment of `device` to a worker of a `tier` tenant; refuses what the tier forbids."""
    _check_uuid(device)
    if tier is Tier.MIG:
        _refuse_fraction(tier, memory_fraction)
        if not device.is_mig:
            raise DeviceNotAllowed("A mig-tier worker runs on its own MIG instance, not a GPU.")
        return DeviceAssignment(AssignmentKind.MIG_INSTANCE, device.uuid)
    if tier is Tier.DEDICATED:
        _refuse_fraction(tier, memory_fraction)
        if device.is_mig or device.mig_enabled:
            raise DeviceNotAllowed("A dedicated-tier worker runs on a whole GPU with MIG off.")
        return DeviceAssignment(AssignmentKind.WHOLE_GPU, device.uuid)
    if device.mig_enabled:
        raise DeviceNotAllowed("A GPU in MIG mode is shared through its MIG instances only.")
    return DeviceAssignment(AssignmentKind.SHARED_GPU, device.uuid, _fraction(memory_fraction))


def _check_uuid(device: Device) -> None:
    prefix = "MIG-" if device.is_mig else "GPU-"
    if not _UUID.fullmatch(device.uuid) or not device.uuid.startswith(prefix):
        what = "MIG device" if device.is_mig else "GPU"
        raise DeviceNotAllowed(f"A {what} is named by a UUID starting {prefix}.")


def _refuse_fraction(tier: Tier, fraction: float | None) -> None:
    if fraction is not None:
        raise DeviceNotAllowed(f"A {tier.value}-tier worker owns its device: no memory fraction.")


def _fraction(fraction: float | None) -> float:
    if fraction is None or not math.isfinite(fraction) or not 0 < fraction <= 1:
        raise DeviceNotAllowed("A shared-tier worker needs a memory fraction in (0, 1].")
    return float(fraction)


def worker_env(base: Mapping[str, str], assignment: DeviceAssignment | None) -> dict[str, str]:
    """`base` without any inherited GPU selection, pinned to `assignment` (None: no GPU at all)."""
    env = {k: v for k, v in base.items() if k not in GPU_SELECTION_ENV}
    env.update(assignment.env() if assignment is not None else NO_GPU_ENV)
    return env


def check_exclusive(claims: Iterable[tuple[str, DeviceAssignment]]) -> None:
    """Raise `Conflict` unless the (owner, assignment) pairs keep tenants apart.

    An owner is a tenant id for mig and dedicated workers (one tenant may run
    several workers on its own device) and the shared pool's name for shared
    workers.  A MIG instance or dedicated GPU has one owner and is never also
    shared; the memory fractions on a shared device add up to at most 1.
    """
    owners: dict[str, set[str]] = defaultdict(set)
    shared: dict[str, float] = defaultdict(float)
    for owner, assignment in claims:
        if assignment.kind is AssignmentKind.SHARED_GPU:
            shared[assignment.uuid] += assignment.memory_fraction or 0.0
        else:
            owners[assignment.uuid].add(owner)
    for uuid, held_by in owners.items():
        if len(held_by) > 1:
            raise Conflict(f"Device {uuid} is assigned to more than one tenant.")
        if uuid in shared:
            raise Conflict(f"Device {uuid} is held by one tenant and also shared.")
    for uuid, total in shared.items():
        if total > 1 + 1e-9:
            raise Conflict(f"The memory fractions on shared device {uuid} add up to {total:.3g}.")


class CudaMemory(Protocol):
    """The part of `torch.cuda` that caps a process's share of device memory."""

    def set_per_process_memory_fraction(self, fraction: float, device: int) -> None: ...


def memory_fraction_from_env(env: Mapping[str, str]) -> float | None:
    """The cap the gateway set for this worker, or None; a malformed value raises."""
    raw = env.get(MEMORY_FRACTION_ENV)
    if raw is None or raw == "":
        return None
    try:
        return _fraction(float(raw))
    except ValueError:
        raise DeviceNotAllowed(f"{MEMORY_FRACTION_ENV} must be a number in (0, 1].") from None


def apply_memory_cap(cuda: CudaMemory, env: Mapping[str, str]) -> float | None:
    """In the worker: cap PyTorch's allocator on its one visible device (index 0), if asked."""
    fraction = memory_fraction_from_env(env)
    if fraction is not None:
        cuda.set_per_process_memory_fraction(fraction, 0)
    return fraction
