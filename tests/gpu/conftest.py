"""Opt-in tests for a machine with an NVIDIA GPU: `make test-gpu` sets BULKHEAD_GPU_TESTS=1.

Without it nothing here is collected, so `make test` and CI never run these.
With it they fail, never skip, where the GPU or its tools are missing: asking
for them on a machine without a GPU is a mistake worth hearing about.  Only
the memory-cap test skips, when torch has no CUDA (the project installs the
CPU wheel).  Nothing here changes MIG mode or instances.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from bulkhead.runtime.gpu import GpuInventory, discover, load_nvml

if os.environ.get("BULKHEAD_GPU_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]


def nvidia_smi(*args: str) -> str:
    result = subprocess.run(
        ["nvidia-smi", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"nvidia-smi {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def inventory() -> Iterator[GpuInventory]:
    nvml = load_nvml()
    assert nvml is not None, "install the gpu extra: pip install -e '.[gpu]'"
    found = discover(nvml)
    assert found.gpus, f"no GPU found: {found.reason}"
    yield found
