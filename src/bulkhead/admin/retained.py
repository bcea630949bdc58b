"""/tenant/v1/exchanges: a tenant's own retained prompts and responses (decrypted on read)."""

from __future__ import annotations

import asyncio
from typing import Any

from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.admin.tenant import tenant_id
from bulkhead.store.retention import RetentionStore

P = "/tenant/v1/exchanges"


def routes(store: RetentionStore) -> list[Route]:
    async def list_(call: Call) -> dict[str, Any]:
        limit = call.int_query("limit", 100, 1, 1000)
        found = await asyncio.to_thread(store.list, tenant_id(call.ctx), limit=limit)
        return {"object": "list", "data": [i.json() for i in found]}

    async def get(call: Call) -> dict[str, Any]:
        return await asyncio.to_thread(store.get, tenant_id(call.ctx), call.params["id"])

    reads = frozenset({Effect.READ_TENANT_DATA})
    return [
        Route(
            "GET", P, "tenant:exchanges.list", list_, "Retained exchanges (metadata)", effects=reads
        ),
        Route(
            "GET",
            f"{P}/{{id}}",
            "tenant:exchanges.get",
            get,
            "One retained exchange, decrypted",
            effects=reads,
        ),
    ]
