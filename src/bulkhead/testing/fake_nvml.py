"""A stand-in for `pynvml` on machines without an NVIDIA GPU: the calls GPU discovery makes.

It answers as nvidia-ml-py does: the same function names and arguments, the
same return shapes (`.total`/`.used`, `.placement.start`/`.size`, profile
info with `.id` and a bytes `.name` such as b"MIG 3g.40gb"), the same error
codes in `NVMLError.value` and texts in `str()`; every call before `nvmlInit`
raises "Uninitialized".  It offers no call that changes anything (no MIG
mode, no instance creation): code that tried would fail here.  `calls`
records what was asked, in order.

The profile tables are those an H100 80GB reports (`nvidia-smi mig -lgip`):
GPU instance profile ids 19 (1g.10gb), 20 (1g.10gb+me), 15 (1g.20gb),
14 (2g.20gb), 9 (3g.40gb), 5 (4g.40gb), 0 (7g.80gb).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12

NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_GPU_INSTANCE_PROFILE_COUNT = 0x12
NVML_COMPUTE_INSTANCE_PROFILE_COUNT = 0x9
NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED = 0

_TEXT = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
}

# GPU instance profile constant (NVML_GPU_INSTANCE_PROFILE_*) -> (profile id, name) on an H100 80GB.
H100_80GB_GI_PROFILES: dict[int, tuple[int, str]] = {
    0x0: (19, "MIG 1g.10gb"),
    0x1: (14, "MIG 2g.20gb"),
    0x2: (9, "MIG 3g.40gb"),
    0x3: (5, "MIG 4g.40gb"),
    0x4: (0, "MIG 7g.80gb"),
    0x7: (20, "MIG 1g.10gb+me"),
    0x9: (15, "MIG 1g.20gb"),
}
# Compute instance profile constant for 1, 2, 3, 4 and 7 SM slices (the id equals the constant).
_CI_CONSTANT = {1: 0x0, 2: 0x1, 3: 0x2, 4: 0x3, 7: 0x4}


class NVMLError(Exception):
    """pynvml's error: `value` is the NVML return code."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _TEXT.get(self.value, f"NVML Error with code {self.value}")


@dataclass
class FakeComputeInstance:
    id: int
    profile_id: int
    start: int
    size: int
    uuid: str
    memory_total: int


@dataclass
class FakeGpuInstance:
    id: int
    profile_id: int
    start: int
    size: int
    compute_instances: list[FakeComputeInstance] = field(default_factory=list)


@dataclass
class FakeGpu:
    """One GPU.  `mig` is (current, pending) NVML_DEVICE_MIG_* or None where unsupported."""

    name: str
    uuid: str
    memory_total: int
    memory_used: int = 0
    mig: tuple[int, int] | None = (NVML_DEVICE_MIG_DISABLE, NVML_DEVICE_MIG_DISABLE)
    gpu_instances: list[FakeGpuInstance] = field(default_factory=list)
    gi_profiles: dict[int, tuple[int, str]] = field(
        default_factory=lambda: dict(H100_80GB_GI_PROFILES)
    )


@dataclass(frozen=True)
class _Gpu:
    index: int


@dataclass(frozen=True)
class _Mig:
    index: int
    gi: int
    ci: int


@dataclass(frozen=True)
class _Gi:
    index: int
    gi: int


@dataclass(frozen=True)
class _Ci:
    index: int
    gi: int
    ci: int


class FakeNvml:
    """The `pynvml` module's discovery calls over a fixed set of `FakeGpu`s."""

    NVMLError = NVMLError
    NVML_ERROR_UNINITIALIZED = NVML_ERROR_UNINITIALIZED
    NVML_ERROR_INVALID_ARGUMENT = NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_DEVICE_MIG_DISABLE = NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE
    NVML_GPU_INSTANCE_PROFILE_COUNT = NVML_GPU_INSTANCE_PROFILE_COUNT
    NVML_COMPUTE_INSTANCE_PROFILE_COUNT = NVML_COMPUTE_INSTANCE_PROFILE_COUNT
    NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED = NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        *,
        init_error: int | None = None,
        privileged: bool = True,
        driver_version: str = "550.54.15",
    ):
        self.gpus = list(gpus or [])
        self.init_error = init_error
        self.privileged = privileged
        self.driver_version = driver_version
        self.initialized = 0
        self.calls: list[str] = []

    # Library -----------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self._ready("nvmlShutdown")
        self.initialized -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._ready("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._ready("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Gpu:
        self._ready("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Gpu(index)

    # Devices, whole or MIG -------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        self._ready("nvmlDeviceGetUUID")
        if isinstance(handle, _Mig):
            return self._ci(handle.index, handle.gi, handle.ci).uuid
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        self._ready("nvmlDeviceGetName")
        if isinstance(handle, _Mig):
            gpu = self.gpus[handle.index]
            gi = self._gi(handle.index, handle.gi)
            ci = self._ci(handle.index, handle.gi, handle.ci)
            return f"{gpu.name} {self._ci_names(gpu, gi)[ci.profile_id]}"
        return self._gpu(handle).name

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> SimpleNamespace:
        self._ready("nvmlDeviceGetMemoryInfo")
        if isinstance(handle, _Mig):
            total = self._ci(handle.index, handle.gi, handle.ci).memory_total
            return SimpleNamespace(total=total, free=total, used=0)
        gpu = self._gpu(handle)
        return SimpleNamespace(
            total=gpu.memory_total, free=gpu.memory_total - gpu.memory_used, used=gpu.memory_used
        )

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        self._ready("nvmlDeviceGetMigMode")
        gpu = self._gpu(handle)
        if gpu.mig is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return list(gpu.mig)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        self._ready("nvmlDeviceGetMaxMigDeviceCount")
        return 0 if self._gpu(handle).mig is None else 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> _Mig:
        self._ready("nvmlDeviceGetMigDeviceHandleByIndex")
        gpu = self._gpu(handle)
        if gpu.mig is None or gpu.mig[0] != NVML_DEVICE_MIG_ENABLE:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        migs = [
            _Mig(handle.index, gi.id, ci.id)
            for gi in gpu.gpu_instances
            for ci in gi.compute_instances
        ]
        if not 0 <= index < len(migs):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return migs[index]

    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        self._ready("nvmlDeviceGetGpuInstanceId")
        return self._mig(handle).gi

    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        self._ready("nvmlDeviceGetComputeInstanceId")
        return self._mig(handle).ci

    # GPU and compute instances (privileged) ----------------------------------------------------

    def nvmlDeviceGetGpuInstanceProfileInfo(self, handle: Any, profile: int) -> SimpleNamespace:
        self._ready("nvmlDeviceGetGpuInstanceProfileInfo")
        found = self._gpu(handle).gi_profiles.get(profile)
        if found is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        profile_id, name = found
        return SimpleNamespace(id=profile_id, name=name.encode())

    def nvmlDeviceGetGpuInstanceById(self, handle: Any, gpu_instance_id: int) -> _Gi:
        self._privileged("nvmlDeviceGetGpuInstanceById")
        self._gpu(handle)
        self._gi(handle.index, gpu_instance_id)
        return _Gi(handle.index, gpu_instance_id)

    def nvmlGpuInstanceGetInfo(self, gpu_instance: _Gi) -> SimpleNamespace:
        self._privileged("nvmlGpuInstanceGetInfo")
        gi = self._gi(gpu_instance.index, gpu_instance.gi)
        return SimpleNamespace(
            device=_Gpu(gpu_instance.index),
            id=gi.id,
            profileId=gi.profile_id,
            placement=SimpleNamespace(start=gi.start, size=gi.size),
        )

    def nvmlGpuInstanceGetComputeInstanceProfileInfo(
        self, gpu_instance: _Gi, profile: int, engine_profile: int
    ) -> SimpleNamespace:
        self._privileged("nvmlGpuInstanceGetComputeInstanceProfileInfo")
        gpu = self.gpus[gpu_instance.index]
        names = self._ci_names(gpu, self._gi(gpu_instance.index, gpu_instance.gi))
        if engine_profile != NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED or profile not in names:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(id=profile, name=names[profile].encode())

    def nvmlGpuInstanceGetComputeInstanceById(self, gpu_instance: _Gi, ci_id: int) -> _Ci:
        self._privileged("nvmlGpuInstanceGetComputeInstanceById")
        self._ci(gpu_instance.index, gpu_instance.gi, ci_id)
        return _Ci(gpu_instance.index, gpu_instance.gi, ci_id)

    def nvmlComputeInstanceGetInfo(self, compute_instance: _Ci) -> SimpleNamespace:
        self._privileged("nvmlComputeInstanceGetInfo")
        ci = self._ci(compute_instance.index, compute_instance.gi, compute_instance.ci)
        return SimpleNamespace(
            id=ci.id,
            profileId=ci.profile_id,
            placement=SimpleNamespace(start=ci.start, size=ci.size),
        )

    # Helpers ---------------------------------------------------------------------------------

    def _ready(self, name: str) -> None:
        self.calls.append(name)
        if self.initialized <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _privileged(self, name: str) -> None:
        self._ready(name)
        if not self.privileged:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)

    def _gpu(self, handle: Any) -> FakeGpu:
        if not isinstance(handle, _Gpu):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[handle.index]

    def _mig(self, handle: Any) -> _Mig:
        if not isinstance(handle, _Mig):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return handle

    def _gi(self, index: int, gi_id: int) -> FakeGpuInstance:
        for gi in self.gpus[index].gpu_instances:
            if gi.id == gi_id:
                return gi
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def _ci(self, index: int, gi_id: int, ci_id: int) -> FakeComputeInstance:
        for ci in self._gi(index, gi_id).compute_instances:
            if ci.id == ci_id:
                return ci
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def _ci_names(self, gpu: FakeGpu, gi: FakeGpuInstance) -> dict[int, str]:
        """Compute instance profile id -> name inside `gi`: "MIG 1c.3g.40gb" … "MIG 3g.40gb"."""
        gi_name = next(name for pid, name in gpu.gi_profiles.values() if pid == gi.profile_id)
        short = gi_name.removeprefix("MIG ")
        slices = int(short.split("g.", 1)[0])
        return {
            constant: gi_name if k == slices else f"MIG {k}c.{short.split('+', 1)[0]}"
            for k, constant in _CI_CONSTANT.items()
            if k <= slices
        }
