"""The GPU inventory: GPUs, MIG mode, GPU and compute instances (`GET /admin/v1/gpus`).

Read-only, like Bulkhead's whole relation to MIG: it plans and reports, and
the operator applies.  Discovery runs in a thread because NVML calls block.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bulkhead.admin import answers
from bulkhead.admin.deps import need
from bulkhead.admin.router import Call, Route


async def list_gpus(call: Call) -> dict[str, Any]:
    found = await asyncio.to_thread(need(call.services.gpu_inventory, "GPU inventory"))
    return found.to_json()


ROUTES = (
    Route.get(
        "/admin/v1/gpus",
        action="admin:gpus.list",
        handler=list_gpus,
        summary="GPU inventory: GPUs, MIG mode, GPU and compute instances and their UUIDs",
        response=answers.GpuInventoryOut,
    ),
)
