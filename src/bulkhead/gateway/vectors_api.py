"""Step 7 for vector stores: the OpenAI-compatible `/v1/vector_stores` endpoints.

Always in the caller's tenant (the credential's, never a field of the
request): another tenant's store or file id is "not found", the same as one
that does not exist.  Bodies were checked at the door (`vectors.request`);
embedding goes through the caller's own path (`vectors.embed`).  When the
gateway runs without vector stores, every route answers 404
`vector_stores_disabled`.
"""

from __future__ import annotations

import asyncio

import orjson

from bulkhead.domain import Tenant
from bulkhead.errors import InvalidRequest, NotFound
from bulkhead.gateway.endpoints import endpoint_of
from bulkhead.gateway.finetune_api import _query, listing
from bulkhead.vectors import request
from bulkhead.vectors.chunking import for_model
from bulkhead.vectors.embed import origin_of
from bulkhead.vectors.service import VectorService
from bulkhead.web.responses import send_bytes, send_json
from bulkhead.web.scope import Receive, Scope, Send, context, exchange, json_body, note_outcome

MAX_LIMIT = 100
_STATUSES = frozenset({"in_progress", "completed", "failed", "cancelled"})


def _list_args(scope: Scope) -> tuple[str | None, int, bool, str | None]:
    """`after`, `limit` (1 to 100, default 20), descending `order`, and `filter` of a list."""
    query = _query(scope.get("query_string", b""))
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_LIMIT}.", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
    after = query.get("after") or None
    if after is not None and len(after) > 64:
        raise InvalidRequest("'after' is not an id.", param="after")
    status = query.get("filter") or None
    if status is not None and status not in _STATUSES:
        raise InvalidRequest(f"'filter' must be one of {sorted(_STATUSES)}.", param="filter")
    return after, limit, order == "desc", status


def _deleted(object_id: str, kind: str) -> bytes:
    return orjson.dumps({"id": object_id, "object": kind, "deleted": True})


class VectorStoreEndpoints:
    def __init__(self, *, service: VectorService | None):
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant, endpoint = context(scope).tenant, endpoint_of(scope)
        if tenant is None or endpoint is None:  # pragma: no cover - authorize admits neither
            raise NotFound("not found")
        if self.service is None:
            raise NotFound(
                "Vector stores are not enabled on this gateway.", code="vector_stores_disabled"
            )
        action = endpoint.action.removeprefix("v1:vector_stores.")
        params = endpoint.params(scope["path"])
        store_id = params.get("vector_store_id")
        if store_id is not None:
            exchange(scope).names(resource=store_id)
        if action.startswith("files."):
            assert store_id is not None
            await self.files(scope, send, tenant, store_id, action, params.get("file_id"))
        else:
            await self.stores(scope, send, tenant, action, store_id)

    async def stores(
        self, scope: Scope, send: Send, tenant: Tenant, action: str, store_id: str | None
    ) -> None:
        assert self.service is not None
        stores = self.service.stores
        if action == "create":
            await self.create(scope, send, tenant)
        elif action == "list":
            after, limit, descending, _ = _list_args(scope)
            page, more = await asyncio.to_thread(
                stores.list, tenant.id, after=after, limit=limit, descending=descending
            )
            await send_json(send, 200, listing([s.openai() for s in page], more))
        elif store_id is None:  # pragma: no cover - the table gives every other route an id
            raise NotFound("not found")
        elif action == "get":
            info = await asyncio.to_thread(stores.get, tenant.id, store_id)
            await send_json(send, 200, info.openai())
        elif action == "update":
            name, metadata = request.parse_modify(json_body(scope))
            info = await asyncio.to_thread(
                stores.modify, tenant.id, store_id, name=name, metadata=metadata
            )
            await send_json(send, 200, info.openai())
        elif action == "delete":
            await asyncio.to_thread(stores.delete, tenant.id, store_id)
            await send_bytes(send, 200, _deleted(store_id, "vector_store.deleted"))
        else:  # search
            ask = request.parse_search(json_body(scope))
            page = await self.service.search(origin_of(scope), tenant, store_id, ask)
            await send_json(send, 200, page)

    async def create(self, scope: Scope, send: Send, tenant: Tenant) -> None:
        assert self.service is not None
        ask = request.parse_create(json_body(scope))
        chunking = for_model(ask.model, ask.chunking)  # before the store exists: 400 leaves none
        stores = self.service.stores
        info = await asyncio.to_thread(
            stores.create,
            tenant,
            name=ask.name,
            model=ask.model,
            metadata=ask.metadata,
            files=len(set(ask.file_ids)),
        )
        exchange(scope).names(resource=info.id)
        note_outcome(scope, created=info.id, target_tenant=None)
        for file_id in ask.file_ids:
            link = await asyncio.to_thread(
                stores.attach,
                tenant.id,
                info.id,
                file_id,
                chunking=chunking.openai(),
                attributes={},
            )
            self.service.ingest_later(origin_of(scope), tenant, info, link, chunking)
        info = await asyncio.to_thread(stores.get, tenant.id, info.id)
        await send_json(send, 200, info.openai())

    async def files(
        self,
        scope: Scope,
        send: Send,
        tenant: Tenant,
        store_id: str,
        action: str,
        file_id: str | None,
    ) -> None:
        assert self.service is not None
        stores = self.service.stores
        if action == "files.create":
            ask = request.parse_attach(json_body(scope))
            info = await asyncio.to_thread(stores.get, tenant.id, store_id)
            chunking = for_model(info.model, ask.chunking)
            link = await asyncio.to_thread(
                stores.attach,
                tenant.id,
                store_id,
                ask.file_id,
                chunking=chunking.openai(),
                attributes=ask.attributes,
            )
            self.service.ingest_later(origin_of(scope), tenant, info, link, chunking)
            await send_json(send, 200, link.openai())
        elif action == "files.list":
            after, limit, descending, status = _list_args(scope)
            page, more = await asyncio.to_thread(
                stores.links,
                tenant.id,
                store_id,
                after=after,
                limit=limit,
                descending=descending,
                status=status,
            )
            await send_json(send, 200, listing([f.openai() for f in page], more))
        elif file_id is None:  # pragma: no cover - the table gives these routes a file id
            raise NotFound("not found")
        elif action == "files.get":
            link = await asyncio.to_thread(stores.link, tenant.id, store_id, file_id)
            await send_json(send, 200, link.openai())
        else:  # files.delete
            await asyncio.to_thread(stores.detach, tenant.id, store_id, file_id)
            await send_bytes(send, 200, _deleted(file_id, "vector_store.file.deleted"))
