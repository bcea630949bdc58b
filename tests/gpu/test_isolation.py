"""A worker pinned by its assignment sees only its device, and a shared worker's memory cap holds.

The child processes ask the CUDA driver itself (libcuda through ctypes), since
`nvidia-smi` lists every GPU whatever CUDA_VISIBLE_DEVICES says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from bulkhead.domain import Tier
from bulkhead.runtime.gpu import (
    DeviceAssignment,
    GpuInventory,
    assign,
    devices,
    worker_env,
)

pytestmark = pytest.mark.gpu

# What a worker would see: the number of CUDA devices and the first one's UUID.
CUDA_VIEW = r"""
import ctypes, json, uuid
cuda = ctypes.CDLL("libcuda.so.1")
status = cuda.cuInit(0)
count = ctypes.c_int(0)
if status == 0:
    status = cuda.cuDeviceGetCount(ctypes.byref(count))
seen = None
if status == 0 and count.value:
    device = ctypes.c_int(0)
    assert cuda.cuDeviceGet(ctypes.byref(device), 0) == 0
    raw = (ctypes.c_ubyte * 16)()
    get = getattr(cuda, "cuDeviceGetUuid_v2", None) or cuda.cuDeviceGetUuid
    assert get(raw, device) == 0
    seen = str(uuid.UUID(bytes=bytes(raw)))
print(json.dumps({"status": status, "count": count.value, "uuid": seen}))
"""

# Under a memory cap: allocate half of the cap (must work), then twice the cap (must fail).
MEMORY_CAP = r"""
import json, os, torch
from bulkhead.runtime.gpu import apply_memory_cap
fraction = apply_memory_cap(torch.cuda, os.environ)
total = torch.cuda.get_device_properties(0).total_memory
small = torch.empty(int(total * fraction / 2), dtype=torch.uint8, device="cuda")
try:
    big = torch.empty(int(total * fraction * 2), dtype=torch.uint8, device="cuda")
    refused = False
except torch.cuda.OutOfMemoryError:
    refused = True
print(json.dumps({"fraction": fraction, "refused": refused}))
"""


def run_as_worker(code: str, assignment: DeviceAssignment | None) -> dict[str, Any]:
    # An outside selection that must not leak through: every GPU, by index.
    outside = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1,2,3", "NVIDIA_VISIBLE_DEVICES": "all"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=worker_env(outside, assignment),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def pinned(inventory: GpuInventory) -> DeviceAssignment:
    """A MIG device for a mig tenant where there is one, else a whole GPU for a dedicated one."""
    found = devices(inventory)
    mig = [d for d in found if d.is_mig]
    if mig:
        return assign(Tier.MIG, mig[-1])
    whole = [d for d in found if not d.is_mig and not d.mig_enabled]
    assert whole, "no MIG device and no GPU with MIG off"
    return assign(Tier.DEDICATED, whole[-1])


def test_a_worker_sees_only_its_assigned_device(inventory: GpuInventory) -> None:
    assignment = pinned(inventory)
    seen = run_as_worker(CUDA_VIEW, assignment)
    assert (seen["status"], seen["count"]) == (0, 1)
    assert assignment.uuid.endswith(seen["uuid"]), (assignment.uuid, seen["uuid"])


def test_a_worker_without_a_device_sees_none(inventory: GpuInventory) -> None:
    seen = run_as_worker(CUDA_VIEW, None)
    assert seen["count"] == 0
    assert seen["status"] in (0, 100), "CUDA_SUCCESS with no device, or CUDA_ERROR_NO_DEVICE"


def test_a_shared_workers_memory_cap_holds(inventory: GpuInventory) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here (the CPU wheel): the cap cannot be exercised")
    found = devices(inventory)
    device = next((d for d in found if not d.is_mig and not d.mig_enabled), None) or next(
        d for d in found if d.is_mig
    )
    result = run_as_worker(MEMORY_CAP, assign(Tier.SHARED, device, memory_fraction=0.1))
    assert result == {"fraction": 0.1, "refused": True}
