"""Device assignment: which tier gets which device, and the environment that pins a worker."""

from __future__ import annotations

import math

import pytest

from bulkhead.domain import Tier
from bulkhead.errors import Conflict
from bulkhead.runtime.gpu import (
    GPU_SELECTION_ENV,
    MEMORY_FRACTION_ENV,
    AssignmentKind,
    Device,
    DeviceAssignment,
    DeviceNotAllowed,
    apply_memory_cap,
    assign,
    check_exclusive,
    devices,
    discover,
    memory_fraction_from_env,
    worker_env,
)
from bulkhead.testing.fake_nvml import (
    NVML_DEVICE_MIG_ENABLE,
    FakeComputeInstance,
    FakeGpu,
    FakeGpuInstance,
    FakeNvml,
)

GPU = Device("GPU-5c7a0f0e-6a3b-4b8e-9d51-0d3f7c2b1a00", is_mig=False)
GPU_IN_MIG_MODE = Device("GPU-5c7a0f0e-6a3b-4b8e-9d51-0d3f7c2b1a01", is_mig=False, mig_enabled=True)
MIG = Device("MIG-0a1b2c3d-0000-5000-8000-000000000001", is_mig=True, profile="3g.40gb")
# The pre-R470 MIG naming, which CUDA still accepts.
OLD_MIG = Device("MIG-GPU-5c7a0f0e-6a3b-4b8e-9d51-0d3f7c2b1a01/1/0", is_mig=True)


def test_a_mig_tenant_gets_its_mig_instance() -> None:
    got = assign(Tier.MIG, MIG)
    assert got == DeviceAssignment(AssignmentKind.MIG_INSTANCE, MIG.uuid)
    assert got.env() == {"CUDA_VISIBLE_DEVICES": MIG.uuid}
    assert assign(Tier.MIG, OLD_MIG).uuid == OLD_MIG.uuid


def test_a_dedicated_tenant_gets_a_whole_gpu() -> None:
    got = assign(Tier.DEDICATED, GPU)
    assert (got.kind, got.uuid, got.memory_fraction) == (AssignmentKind.WHOLE_GPU, GPU.uuid, None)
    assert got.env() == {"CUDA_VISIBLE_DEVICES": GPU.uuid}


def test_shared_workers_get_a_gpu_with_a_memory_cap() -> None:
    got = assign(Tier.SHARED, GPU, memory_fraction=0.25)
    assert got.kind is AssignmentKind.SHARED_GPU
    assert got.env() == {"CUDA_VISIBLE_DEVICES": GPU.uuid, MEMORY_FRACTION_ENV: "0.25"}
    assert assign(Tier.SHARED, MIG, memory_fraction=0.5).uuid == MIG.uuid


@pytest.mark.parametrize(
    ("tier", "device", "fraction", "message"),
    [
        pytest.param(Tier.MIG, GPU, None, "own MIG instance", id="mig-on-gpu"),
        pytest.param(Tier.MIG, MIG, 0.5, "no memory fraction", id="mig-with-fraction"),
        pytest.param(Tier.DEDICATED, MIG, None, "whole GPU", id="dedicated-on-mig"),
        pytest.param(Tier.DEDICATED, GPU_IN_MIG_MODE, None, "MIG off", id="dedicated-mig-mode"),
        pytest.param(Tier.DEDICATED, GPU, 1.0, "no memory fraction", id="dedicated-fraction"),
        pytest.param(Tier.SHARED, GPU, None, r"\(0, 1\]", id="shared-without-fraction"),
        pytest.param(Tier.SHARED, GPU, 0.0, r"\(0, 1\]", id="shared-zero"),
        pytest.param(Tier.SHARED, GPU, 1.5, r"\(0, 1\]", id="shared-over-one"),
        pytest.param(Tier.SHARED, GPU, math.nan, r"\(0, 1\]", id="shared-nan"),
        pytest.param(Tier.SHARED, GPU_IN_MIG_MODE, 0.5, "MIG instances only", id="shared-mig"),
    ],
)
def test_what_a_tier_may_not_use_is_refused(
    tier: Tier, device: Device, fraction: float | None, message: str
) -> None:
    with pytest.raises(DeviceNotAllowed, match=message):
        assign(tier, device, memory_fraction=fraction)


@pytest.mark.parametrize(
    "uuid",
    [
        pytest.param("0", id="an-index"),
        pytest.param("GPU-1,GPU-2", id="two-devices"),
        pytest.param("MIG-abc", id="mig-uuid-for-a-gpu"),
        pytest.param("GPU-abc\nLD_PRELOAD=x", id="newline"),
        pytest.param("GPU-abc\n", id="trailing-newline"),
        pytest.param("", id="empty"),
    ],
)
def test_only_a_single_uuid_of_the_right_kind_is_accepted(uuid: str) -> None:
    with pytest.raises(DeviceNotAllowed, match="UUID"):
        assign(Tier.DEDICATED, Device(uuid, is_mig=False))


def test_inherited_gpu_selection_is_never_passed_through() -> None:
    outside = {
        "PATH": "/usr/bin",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "NVIDIA_VISIBLE_DEVICES": "all",
        "CUDA_MPS_PIPE_DIRECTORY": "/tmp/mps",
        MEMORY_FRACTION_ENV: "1.0",
    }
    pinned = worker_env(outside, assign(Tier.MIG, MIG))
    assert pinned == {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": MIG.uuid}
    assert worker_env(outside, None) == {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": ""}
    assert {"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"} <= GPU_SELECTION_ENV


def test_each_assignable_device_comes_from_the_inventory() -> None:
    gpu = FakeGpu(
        "NVIDIA H100 80GB HBM3",
        GPU_IN_MIG_MODE.uuid,
        80 << 30,
        mig=(NVML_DEVICE_MIG_ENABLE, NVML_DEVICE_MIG_ENABLE),
        gpu_instances=[
            FakeGpuInstance(1, 9, 0, 4, [FakeComputeInstance(0, 2, 0, 3, MIG.uuid, 40 << 30)])
        ],
    )
    found = devices(discover(FakeNvml([gpu, FakeGpu("NVIDIA A10", GPU.uuid, 24 << 30)])))
    assert found == (
        Device(GPU_IN_MIG_MODE.uuid, is_mig=False, mig_enabled=True, memory_total=80 << 30),
        Device(MIG.uuid, is_mig=True, memory_total=40 << 30, profile="3g.40gb"),
        Device(GPU.uuid, is_mig=False, memory_total=24 << 30),
    )


# Keeping tenants apart --------------------------------------------------------------------


def test_one_tenant_may_run_several_workers_on_its_own_device() -> None:
    check_exclusive(
        [
            ("ten_a", assign(Tier.MIG, MIG)),
            ("ten_a", assign(Tier.MIG, MIG)),
            ("shared", assign(Tier.SHARED, GPU, memory_fraction=0.5)),
            ("shared", assign(Tier.SHARED, GPU, memory_fraction=0.5)),
        ]
    )


def test_an_exclusive_device_has_one_tenant() -> None:
    with pytest.raises(Conflict, match="more than one tenant"):
        check_exclusive([("ten_a", assign(Tier.MIG, MIG)), ("ten_b", assign(Tier.MIG, MIG))])


def test_an_exclusive_device_is_never_also_shared() -> None:
    with pytest.raises(Conflict, match="also shared"):
        check_exclusive(
            [
                ("ten_a", assign(Tier.DEDICATED, GPU)),
                ("shared", assign(Tier.SHARED, GPU, memory_fraction=0.1)),
            ]
        )


def test_shared_fractions_add_up_to_at_most_one() -> None:
    with pytest.raises(Conflict, match=r"add up to 1\.2"):
        check_exclusive(
            [("shared", assign(Tier.SHARED, GPU, memory_fraction=0.6)) for _ in range(2)]
        )


# In the worker ------------------------------------------------------------------------------


class RecordingCuda:
    def __init__(self) -> None:
        self.calls: list[tuple[float, int]] = []

    def set_per_process_memory_fraction(self, fraction: float, device: int) -> None:
        self.calls.append((fraction, device))


def test_the_worker_applies_its_cap_to_its_one_device() -> None:
    cuda = RecordingCuda()
    env = assign(Tier.SHARED, GPU, memory_fraction=0.3).env()
    assert apply_memory_cap(cuda, env) == 0.3
    assert cuda.calls == [(0.3, 0)]


def test_without_a_cap_nothing_is_applied() -> None:
    cuda = RecordingCuda()
    assert apply_memory_cap(cuda, assign(Tier.MIG, MIG).env()) is None
    assert memory_fraction_from_env({MEMORY_FRACTION_ENV: ""}) is None
    assert cuda.calls == []


@pytest.mark.parametrize("raw", ["abc", "0", "-0.5", "2", "nan", "inf"])
def test_a_malformed_cap_stops_the_worker(raw: str) -> None:
    with pytest.raises(DeviceNotAllowed):
        memory_fraction_from_env({MEMORY_FRACTION_ENV: raw})
