"""NVML discovery agrees with `nvidia-smi` on this machine's GPUs and MIG devices."""

from __future__ import annotations

import re

import pytest

from bulkhead.runtime.gpu import GpuInventory
from tests.gpu.conftest import nvidia_smi

pytestmark = pytest.mark.gpu

MIB = 1024 * 1024
QUERY = "index,uuid,name,memory.total,mig.mode.current,mig.mode.pending,driver_version"


def test_gpus_match_nvidia_smi_query(inventory: GpuInventory) -> None:
    rows = [
        [cell.strip() for cell in line.split(",")]
        for line in nvidia_smi(f"--query-gpu={QUERY}", "--format=csv,noheader,nounits").splitlines()
        if line.strip()
    ]
    assert len(rows) == len(inventory.gpus)
    for gpu, (index, uuid, name, memory_mib, current, pending, driver) in zip(
        inventory.gpus, rows, strict=True
    ):
        assert (str(gpu.index), gpu.uuid, gpu.name) == (index, uuid, name)
        assert gpu.memory_total // MIB == int(memory_mib)
        assert _mode(gpu.mig_current) == current and _mode(gpu.mig_pending) == pending
        assert inventory.driver_version == driver


def _mode(value: bool | None) -> str:
    return "[N/A]" if value is None else ("Enabled" if value else "Disabled")


GPU_LINE = re.compile(r"^GPU (\d+): (.+) \(UUID: (GPU-[^)]+)\)$")
MIG_LINE = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)$")


def test_gpus_and_mig_devices_match_nvidia_smi_list(inventory: GpuInventory) -> None:
    gpus: list[tuple[int, str, str]] = []
    migs: dict[str, str] = {}
    for line in nvidia_smi("-L").splitlines():
        if found := GPU_LINE.match(line):
            gpus.append((int(found.group(1)), found.group(2), found.group(3)))
        elif found := MIG_LINE.match(line):
            migs[found.group(3)] = found.group(1)
    assert gpus == [(g.index, g.name, g.uuid) for g in inventory.gpus]
    discovered = {
        ci.uuid: ci.profile
        for g in inventory.gpus
        for gi in g.gpu_instances
        for ci in gi.compute_instances
    }
    assert discovered == migs
