"""The GPU inventory: GPUs, MIG mode, GPU and compute instances (`GET /admin/v1/gpus`).

Read-only, like Bulkhead's whole relation to MIG: it plans and reports, and
the operator applies.  Discovery runs in a thread because NVML calls block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bulkhead.admin.router import Call, Route
from bulkhead.runtime.gpu import GpuInventory


def routes(inventory: Callable[[], GpuInventory]) -> list[Route]:
    async def list_gpus(call: Call) -> dict[str, Any]:
        found = await asyncio.to_thread(inventory)
        return found.to_json()

    return [
        Route(
            "GET",
            "/admin/v1/gpus",
            "admin:gpus.list",
            list_gpus,
            "GPU inventory: GPUs, MIG mode, GPU and compute instances and their UUIDs",
        )
    ]
