"""GPU discovery through NVML (`nvidia-ml-py`, module `pynvml`), read-only.

The binding is passed in (`discover(nvml)`): production passes the `pynvml`
module from `load_nvml()`, tests pass `bulkhead.testing.fake_nvml.FakeNvml`.
No GPU, no driver or no binding gives an empty inventory with its reason,
never an exception.  Reading placements of GPU and compute instances needs a
privileged user on most drivers; without it the MIG devices are still listed
with their UUIDs and profile names (from the device name) and a note says
what could not be read.  Nothing here changes MIG mode or any instance.
"""

from __future__ import annotations

import contextlib
import ctypes.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from bulkhead.runtime.gpu._profiles import model_key_for


class Nvml(Protocol):
    """The part of `pynvml` that discovery calls (same names, same behaviour)."""

    NVMLError: type[Exception]
    NVML_ERROR_NOT_SUPPORTED: int
    NVML_ERROR_NOT_FOUND: int
    NVML_ERROR_NO_PERMISSION: int
    NVML_ERROR_INVALID_ARGUMENT: int
    NVML_DEVICE_MIG_ENABLE: int
    NVML_GPU_INSTANCE_PROFILE_COUNT: int
    NVML_COMPUTE_INSTANCE_PROFILE_COUNT: int
    NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED: int

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> Any: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMigMode(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int: ...
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any: ...
    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int: ...
    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int: ...
    def nvmlDeviceGetGpuInstanceProfileInfo(self, handle: Any, profile: int) -> Any: ...
    def nvmlDeviceGetGpuInstanceById(self, handle: Any, gpu_instance_id: int) -> Any: ...
    def nvmlGpuInstanceGetInfo(self, gpu_instance: Any) -> Any: ...
    def nvmlGpuInstanceGetComputeInstanceProfileInfo(
        self, gpu_instance: Any, profile: int, engine_profile: int
    ) -> Any: ...
    def nvmlGpuInstanceGetComputeInstanceById(
        self, gpu_instance: Any, compute_instance_id: int
    ) -> Any: ...
    def nvmlComputeInstanceGetInfo(self, compute_instance: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class ComputeInstance:
    """A compute instance inside a GPU instance: what CUDA sees as one MIG device."""

    id: int
    uuid: str
    profile: str | None
    start: int | None = None
    size: int | None = None
    memory_total: int | None = None


@dataclass(frozen=True, slots=True)
class GpuInstance:
    """A MIG GPU instance: its profile, its memory-slice placement and its compute instances."""

    id: int
    profile: str | None
    start: int | None
    size: int | None
    compute_instances: tuple[ComputeInstance, ...]


@dataclass(frozen=True, slots=True)
class Gpu:
    """One physical GPU.  `mig_current`/`mig_pending` are None where MIG is not supported."""

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_used: int
    mig_current: bool | None
    mig_pending: bool | None
    gpu_instances: tuple[GpuInstance, ...] = ()

    @property
    def model(self) -> str | None:
        """The planner's key for this GPU (`h100-80gb`, …), None if the catalog lacks it."""
        return model_key_for(self.name, self.memory_total)


@dataclass(frozen=True, slots=True)
class GpuInventory:
    """What discovery found.  No GPUs comes with `reason`; partial reads add `notes`."""

    gpus: tuple[Gpu, ...] = ()
    driver_version: str | None = None
    reason: str | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "available": bool(self.gpus),
            "reason": self.reason,
            "driver_version": self.driver_version,
            "notes": list(self.notes),
            "gpus": [_gpu_json(g) for g in self.gpus],
        }


def _gpu_json(gpu: Gpu) -> dict[str, Any]:
    return {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "name": gpu.name,
        "model": gpu.model,
        "memory_total": gpu.memory_total,
        "memory_used": gpu.memory_used,
        "mig_current": gpu.mig_current,
        "mig_pending": gpu.mig_pending,
        "gpu_instances": [
            {
                "id": gi.id,
                "profile": gi.profile,
                "start": gi.start,
                "size": gi.size,
                "compute_instances": [
                    {
                        "id": ci.id,
                        "uuid": ci.uuid,
                        "profile": ci.profile,
                        "start": ci.start,
                        "size": ci.size,
                        "memory_total": ci.memory_total,
                    }
                    for ci in gi.compute_instances
                ],
            }
            for gi in gpu.gpu_instances
        ],
    }


def load_nvml() -> Nvml | None:
    """The `pynvml` module, or None where the `gpu` extra (nvidia-ml-py) is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    binding: Nvml = pynvml
    return binding


def system_inventory() -> GpuInventory:
    """This machine's GPUs through the installed NVML binding (what the `app` package wires).

    Where no NVIDIA driver library is installed, the binding is not even
    imported: a CPU-only gateway saves its memory.
    """
    if ctypes.util.find_library("nvidia-ml") is None:
        return GpuInventory(
            reason="NVML is not available: no NVIDIA driver library (libnvidia-ml)."
        )
    return discover(load_nvml())


def discover(nvml: Nvml | None) -> GpuInventory:
    """Every GPU NVML reports, with MIG mode and instances; never raises for a missing GPU."""
    if nvml is None:
        return GpuInventory(reason="nvidia-ml-py is not installed (pip install 'bulkhead[gpu]').")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return GpuInventory(reason=f"NVML is not available: {exc}.")
    try:
        return _read(nvml)
    except nvml.NVMLError as exc:
        return GpuInventory(reason=f"NVML query failed: {exc}.")
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def _read(nvml: Nvml) -> GpuInventory:
    notes: list[str] = []
    gpus = tuple(_gpu(nvml, i, notes) for i in range(nvml.nvmlDeviceGetCount()))
    reason = None if gpus else "NVML reports no GPUs."
    return GpuInventory(gpus, _text(nvml.nvmlSystemGetDriverVersion()), reason, tuple(notes))


def _gpu(nvml: Nvml, index: int, notes: list[str]) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    current, pending = _mig_mode(nvml, handle)
    instances = _gpu_instances(nvml, handle, index, notes) if current else ()
    return Gpu(
        index=index,
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        memory_total=int(memory.total),
        memory_used=int(memory.used),
        mig_current=current,
        mig_pending=pending,
        gpu_instances=instances,
    )


def _mig_mode(nvml: Nvml, handle: Any) -> tuple[bool | None, bool | None]:
    try:
        current, pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError as exc:
        if _code(exc) == nvml.NVML_ERROR_NOT_SUPPORTED:
            return None, None
        raise
    enabled = nvml.NVML_DEVICE_MIG_ENABLE
    return current == enabled, pending == enabled


# MIG instances ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Collected:
    """MIG devices of one GPU grouped by GPU instance, while discovery reads them."""

    cis: dict[int, list[ComputeInstance]] = field(default_factory=dict)
    gis: dict[int, tuple[str | None, int | None, int | None]] = field(default_factory=dict)


def _gpu_instances(
    nvml: Nvml, handle: Any, index: int, notes: list[str]
) -> tuple[GpuInstance, ...]:
    found = _Collected()
    denied: list[str] = []
    gi_names = _profile_names(nvml, handle, gi=True)
    for mig in _mig_devices(nvml, handle):
        gi_id = nvml.nvmlDeviceGetGpuInstanceId(mig)
        ci_id = nvml.nvmlDeviceGetComputeInstanceId(mig)
        device_profile = _device_profile(_text(nvml.nvmlDeviceGetName(mig)))
        gi, gi_info = _gpu_instance(nvml, handle, gi_id, gi_names, denied)
        found.gis.setdefault(gi_id, gi_info or (_gi_profile(device_profile), None, None))
        ci = _compute_instance(nvml, gi, ci_id, mig, device_profile, denied)
        found.cis.setdefault(gi_id, []).append(ci)
    if denied:
        notes.append(f"GPU {index}: instance placements not read ({denied[0]}); needs root.")
    return tuple(
        GpuInstance(gi_id, *found.gis[gi_id], tuple(sorted(cis, key=lambda c: c.id)))
        for gi_id, cis in sorted(found.cis.items())
    )


def _mig_devices(nvml: Nvml, handle: Any) -> Iterator[Any]:
    """The MIG device handles of a GPU; unused slots answer "not found" and are skipped."""
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            yield nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError as exc:
            if _code(exc) != nvml.NVML_ERROR_NOT_FOUND:
                raise


def _gpu_instance(
    nvml: Nvml, handle: Any, gi_id: int, names: dict[int, str], denied: list[str]
) -> tuple[Any, tuple[str | None, int | None, int | None] | None]:
    """(GPU instance handle, (profile, start, size)), or (None, None) where not permitted."""
    try:
        gi = nvml.nvmlDeviceGetGpuInstanceById(handle, gi_id)
        info = nvml.nvmlGpuInstanceGetInfo(gi)
    except nvml.NVMLError as exc:
        _only_denied(nvml, exc, denied)
        return None, None
    placement = info.placement
    return gi, (names.get(info.profileId), int(placement.start), int(placement.size))


def _compute_instance(
    nvml: Nvml, gi: Any, ci_id: int, mig: Any, device_profile: str | None, denied: list[str]
) -> ComputeInstance:
    uuid = _text(nvml.nvmlDeviceGetUUID(mig))
    memory = int(nvml.nvmlDeviceGetMemoryInfo(mig).total)
    if gi is None:
        return ComputeInstance(ci_id, uuid, device_profile, memory_total=memory)
    try:
        ci = nvml.nvmlGpuInstanceGetComputeInstanceById(gi, ci_id)
        info = nvml.nvmlComputeInstanceGetInfo(ci)
    except nvml.NVMLError as exc:
        _only_denied(nvml, exc, denied)
        return ComputeInstance(ci_id, uuid, device_profile, memory_total=memory)
    names = _profile_names(nvml, gi, gi=False)
    placement = info.placement
    return ComputeInstance(
        ci_id,
        uuid,
        names.get(info.profileId, device_profile),
        int(placement.start),
        int(placement.size),
        memory,
    )


def _only_denied(nvml: Nvml, exc: Exception, denied: list[str]) -> None:
    """Note a refusal for lack of privilege; anything else is a real failure and re-raised."""
    if _code(exc) not in (nvml.NVML_ERROR_NO_PERMISSION, nvml.NVML_ERROR_NOT_SUPPORTED):
        raise exc
    denied.append(str(exc))


def _profile_names(nvml: Nvml, handle: Any, *, gi: bool) -> dict[int, str]:
    """NVML profile id → name ("3g.40gb", "1c.3g.40gb") for the profiles this device offers."""
    names: dict[int, str] = {}
    count = nvml.NVML_GPU_INSTANCE_PROFILE_COUNT if gi else nvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT
    for profile in range(count):
        with contextlib.suppress(nvml.NVMLError):
            info = (
                nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, profile)
                if gi
                else nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
                    handle, profile, nvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
                )
            )
            name = _text(getattr(info, "name", b"")).removeprefix("MIG ").strip()
            if name:
                names[int(info.id)] = name
    return names


def _device_profile(name: str) -> str | None:
    """ "NVIDIA H100 80GB HBM3 MIG 1g.10gb" or "MIG 1g.10gb" → "1g.10gb"; None without "MIG "."""
    _, marker, profile = name.rpartition("MIG ")
    return (profile.strip() or None) if marker else None


def _gi_profile(profile: str | None) -> str | None:
    """The GPU instance part of a compute instance's profile: "1c.3g.40gb" → "3g.40gb"."""
    if profile is None:
        return None
    head, _, rest = profile.partition(".")
    return rest if head.endswith("c") and rest else profile


def _code(exc: Exception) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
