"""A pinned worker computes on its GPU; a worker without a device stays on the CPU.

The model is loaded in a process with exactly the environment the supervisor
gives a worker (`worker_env` + the assignment's variables), the way
`test_isolation.py` runs its probes.  Both local torch kinds go through
`hf_causal.to_assigned_device`: the bundled SmolLM2 (16 bits on the GPU)
and imported models (their own dtype).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bulkhead.domain import Tier
from bulkhead.runtime.gpu import DeviceAssignment, GpuInventory, assign, devices
from bulkhead.runtime.workers import worker_env

pytestmark = pytest.mark.gpu

# Loads the bundled model as its worker does and reports where it ended up.
PROBE = """
import json
from bulkhead.runtime.worker.backends import SamplingParams
from bulkhead.runtime.worker.bundled import BundledChatModel
model = BundledChatModel("smollm2-135m")
generation = model.start_chat([("user", "What is the capital of France?")],
                              SamplingParams(max_tokens=16, temperature=0.0, seed=0))
text = ""
while (piece := generation.step()) is not None:
    text += piece
weights = next(model._model.parameters())
print(json.dumps({"device": str(weights.device), "dtype": str(weights.dtype), "text": text}))
"""


def load_as_worker(assignment: DeviceAssignment | None) -> dict[str, Any]:
    # As the supervisor makes it: nothing inherited but PATH and the locale, then the pin.
    env = {**worker_env(), **(assignment.env() if assignment is not None else {})}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def pinned(inventory: GpuInventory) -> DeviceAssignment:
    found = devices(inventory)
    whole = [d for d in found if not d.is_mig and not d.mig_enabled]
    return assign(Tier.DEDICATED, whole[-1]) if whole else assign(Tier.MIG, found[-1])


def test_a_pinned_worker_runs_its_model_on_cuda(inventory: GpuInventory) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.fail("torch has no CUDA here: install a CUDA build of torch for `make test-gpu`")
    seen = load_as_worker(pinned(inventory))
    assert seen["device"].startswith("cuda"), seen
    assert seen["dtype"] in ("torch.bfloat16", "torch.float16"), seen
    assert "Paris" in seen["text"], seen


def test_a_worker_without_a_device_runs_on_the_cpu(inventory: GpuInventory) -> None:
    seen = load_as_worker(None)
    assert seen["device"] == "cpu" and seen["dtype"] == "torch.float32", seen
