"""GPU discovery over the NVML binding: a fake GPU machine, and this machine's real binding."""

from __future__ import annotations

import inspect

import pynvml
import pytest

from bulkhead.runtime.gpu import Nvml, discover, load_nvml, system_inventory
from bulkhead.testing.fake_nvml import (
    NVML_DEVICE_MIG_DISABLE,
    NVML_DEVICE_MIG_ENABLE,
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_UNINITIALIZED,
    FakeComputeInstance,
    FakeGpu,
    FakeGpuInstance,
    FakeNvml,
)

GIB = 1024**3
ON, OFF = NVML_DEVICE_MIG_ENABLE, NVML_DEVICE_MIG_DISABLE
GPU0 = "GPU-5c7a0f0e-6a3b-4b8e-9d51-0d3f7c2b1a00"
GPU1 = "GPU-5c7a0f0e-6a3b-4b8e-9d51-0d3f7c2b1a01"
MIG_3G = "MIG-0a1b2c3d-0000-5000-8000-000000000001"
MIG_2G_A = "MIG-0a1b2c3d-0000-5000-8000-000000000002"
MIG_2G_B = "MIG-0a1b2c3d-0000-5000-8000-000000000003"
MIG_1G = "MIG-0a1b2c3d-0000-5000-8000-000000000004"

# Every call discovery may make: none of them changes anything.
READ_ONLY = {
    "nvmlInit",
    "nvmlShutdown",
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetMaxMigDeviceCount",
    "nvmlDeviceGetMigDeviceHandleByIndex",
    "nvmlDeviceGetGpuInstanceId",
    "nvmlDeviceGetComputeInstanceId",
    "nvmlDeviceGetGpuInstanceProfileInfo",
    "nvmlDeviceGetGpuInstanceById",
    "nvmlGpuInstanceGetInfo",
    "nvmlGpuInstanceGetComputeInstanceProfileInfo",
    "nvmlGpuInstanceGetComputeInstanceById",
    "nvmlComputeInstanceGetInfo",
}


def mig_h100() -> FakeGpu:
    """An H100 in MIG mode: 3g.40gb at 4, 2g.20gb at 0 (as two 1c compute instances), 1g at 2."""
    return FakeGpu(
        "NVIDIA H100 80GB HBM3",
        GPU0,
        80 * GIB,
        memory_used=GIB,
        mig=(ON, ON),
        gpu_instances=[
            FakeGpuInstance(1, 9, 4, 4, [FakeComputeInstance(0, 2, 0, 3, MIG_3G, 40 * GIB)]),
            FakeGpuInstance(
                3,
                14,
                0,
                2,
                [
                    FakeComputeInstance(0, 0, 0, 1, MIG_2G_A, 20 * GIB),
                    FakeComputeInstance(1, 0, 1, 1, MIG_2G_B, 20 * GIB),
                ],
            ),
            FakeGpuInstance(5, 19, 2, 1, [FakeComputeInstance(0, 0, 0, 1, MIG_1G, 10 * GIB)]),
        ],
    )


def plain_a100(mig: tuple[int, int] | None = (OFF, OFF)) -> FakeGpu:
    return FakeGpu("NVIDIA A100-SXM4-40GB", GPU1, 40 * GIB, memory_used=3 * GIB, mig=mig)


def test_gpus_and_their_mig_instances_are_reported() -> None:
    nvml = FakeNvml([mig_h100(), plain_a100()])
    found = discover(nvml)
    assert found.reason is None and found.notes == () and found.driver_version == "550.54.15"
    h100, a100 = found.gpus
    assert (h100.index, h100.uuid, h100.name, h100.model) == (
        0,
        GPU0,
        "NVIDIA H100 80GB HBM3",
        "h100-80gb",
    )
    assert (h100.memory_total, h100.memory_used, h100.mig_current, h100.mig_pending) == (
        80 * GIB,
        GIB,
        True,
        True,
    )
    gis = {gi.id: gi for gi in h100.gpu_instances}
    assert [(gis[i].profile, gis[i].start, gis[i].size) for i in (1, 3, 5)] == [
        ("3g.40gb", 4, 4),
        ("2g.20gb", 0, 2),
        ("1g.10gb", 2, 1),
    ]
    (full,) = gis[1].compute_instances
    assert (full.uuid, full.profile, full.start, full.size) == (MIG_3G, "3g.40gb", 0, 3)
    assert [(c.id, c.uuid, c.profile) for c in gis[3].compute_instances] == [
        (0, MIG_2G_A, "1c.2g.20gb"),
        (1, MIG_2G_B, "1c.2g.20gb"),
    ]
    assert (a100.model, a100.mig_current, a100.gpu_instances) == ("a100-40gb", False, ())
    assert nvml.initialized == 0, "every nvmlInit is matched by an nvmlShutdown"


def test_discovery_only_reads() -> None:
    nvml = FakeNvml([mig_h100(), plain_a100()])
    discover(nvml)
    assert set(nvml.calls) <= READ_ONLY
    assert nvml.calls[0] == "nvmlInit" and nvml.calls[-1] == "nvmlShutdown"


def test_pending_mig_mode_and_unsupported_mig_are_told_apart() -> None:
    found = discover(FakeNvml([plain_a100(mig=(OFF, ON)), plain_a100(mig=None)]))
    pending, unsupported = found.gpus
    assert (pending.mig_current, pending.mig_pending) == (False, True)
    assert (unsupported.mig_current, unsupported.mig_pending) == (None, None)


def test_without_privilege_mig_devices_are_listed_from_their_names() -> None:
    found = discover(FakeNvml([mig_h100()], privileged=False))
    (gpu,) = found.gpus
    gis = {gi.id: gi for gi in gpu.gpu_instances}
    assert [(gis[i].profile, gis[i].start) for i in (1, 3, 5)] == [
        ("3g.40gb", None),
        ("2g.20gb", None),
        ("1g.10gb", None),
    ]
    assert [c.uuid for c in gis[3].compute_instances] == [MIG_2G_A, MIG_2G_B]
    assert [c.profile for c in gis[3].compute_instances] == ["1c.2g.20gb", "1c.2g.20gb"]
    assert found.notes == (
        "GPU 0: instance placements not read (Insufficient Permissions); needs root.",
    )


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found"),
        (NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded"),
    ],
)
def test_no_driver_is_an_empty_inventory_with_its_reason(code: int, text: str) -> None:
    found = discover(FakeNvml(init_error=code))
    assert found.gpus == ()
    assert found.reason == f"NVML is not available: {text}."
    assert found.to_json()["available"] is False


def test_no_binding_and_no_gpus_are_empty_inventories_with_reasons() -> None:
    assert discover(None).reason == ("nvidia-ml-py is not installed (pip install 'bulkhead[gpu]').")
    assert discover(FakeNvml([])).reason == "NVML reports no GPUs."


def test_a_failure_midway_is_reported_and_nvml_is_still_shut_down() -> None:
    class Failing(FakeNvml):
        def nvmlDeviceGetMemoryInfo(self, handle: object) -> object:
            raise self.NVMLError(NVML_ERROR_UNINITIALIZED)

    nvml = Failing([plain_a100()])
    found = discover(nvml)
    assert (found.gpus, found.reason) == ((), "NVML query failed: Uninitialized.")
    assert nvml.initialized == 0


def test_the_inventory_json_names_every_field() -> None:
    doc = discover(FakeNvml([mig_h100()])).to_json()
    assert set(doc) == {"available", "reason", "driver_version", "notes", "gpus"}
    (gpu,) = doc["gpus"]
    ci = gpu["gpu_instances"][0]["compute_instances"][0]
    assert set(ci) == {"id", "uuid", "profile", "start", "size", "memory_total"}
    uuids = [c["uuid"] for g in gpu["gpu_instances"] for c in g["compute_instances"]]
    assert len(uuids) == 4 and all(u.startswith("MIG-") for u in uuids)


# The real binding -----------------------------------------------------------------------


def test_this_machines_nvml_never_raises() -> None:
    found = system_inventory()
    if not found.gpus:
        assert found.reason is not None and found.reason.startswith("NVML is not available")
    assert load_nvml() is pynvml


PROTOCOL_CALLS = sorted(
    name for name, value in vars(Nvml).items() if name.startswith("nvml") and callable(value)
)
PROTOCOL_CONSTANTS = sorted(name for name in Nvml.__annotations__ if name.startswith("NVML_"))


@pytest.mark.parametrize("name", PROTOCOL_CALLS)
def test_the_fake_takes_what_pynvml_takes(name: str) -> None:
    real = inspect.signature(getattr(pynvml, name))
    fake = inspect.signature(getattr(FakeNvml, name))
    required = [p for p in real.parameters.values() if p.default is inspect.Parameter.empty]
    fake_params = list(fake.parameters.values())[1:]  # without self
    assert len(fake_params) == len(required), f"{name}{real} vs fake{fake}"


@pytest.mark.parametrize("name", PROTOCOL_CONSTANTS)
def test_the_fakes_constants_are_pynvmls(name: str) -> None:
    assert getattr(FakeNvml, name) == getattr(pynvml, name)


@pytest.mark.parametrize("code", [1, 2, 3, 4, 6, 9, 12])
def test_the_fakes_errors_read_like_pynvmls(code: int) -> None:
    real, fake = pynvml.NVMLError(code), FakeNvml.NVMLError(code)
    assert (fake.value, str(fake)) == (real.value, str(real))
