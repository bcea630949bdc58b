"""/tenant/v1/exchanges: a tenant's own retained prompts and responses (decrypted on read)."""

from __future__ import annotations

import asyncio
from typing import Any

from bulkhead.admin import answers
from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.admin.rules import tenant_id


async def list_(call: Call) -> dict[str, Any]:
    limit = call.int_query("limit", 100, 1, 1000)
    found = await asyncio.to_thread(call.services.retention.list, tenant_id(call.ctx), limit=limit)
    return {"object": "list", "data": [i.json() for i in found]}


async def get(call: Call) -> dict[str, Any]:
    return await asyncio.to_thread(
        call.services.retention.get, tenant_id(call.ctx), call.params["id"]
    )


_READS = frozenset({Effect.READ_TENANT_DATA})


ROUTES = (
    Route.get(
        "/tenant/v1/exchanges",
        action="tenant:exchanges.list",
        handler=list_,
        summary="Retained exchanges (metadata)",
        response=answers.ExchangeInfo,
        many=True,
        effects=_READS,
    ),
    Route.get(
        "/tenant/v1/exchanges/{id}",
        action="tenant:exchanges.get",
        handler=get,
        summary="One retained exchange, decrypted",
        response=answers.Exchange,
        effects=_READS,
    ),
)
