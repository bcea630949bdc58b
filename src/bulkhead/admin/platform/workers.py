"""/admin/v1/workers: the local workers this gateway supervises."""

from __future__ import annotations

from bulkhead.admin import schemas as s
from bulkhead.admin.router import Call, Route


async def list_workers(call: Call) -> list[s.WorkerOut]:
    return [s.WorkerOut.model_validate(w) for w in call.services.workers.status()]


ROUTES = (
    Route.get(
        "/admin/v1/workers",
        action="admin:workers.list",
        handler=list_workers,
        summary="List local workers",
        response=s.WorkerOut,
        many=True,
    ),
)
