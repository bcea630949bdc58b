"""Step 7 for fine-tuning: the OpenAI-compatible `/v1/fine_tuning/jobs` endpoints.

Always in the caller's tenant (the credential's, never a field of the
request): a job id of another tenant is "not found", the same as one that
does not exist.  Creating a job names a base model, which must be granted to
the tenant and allowed to this key (`authorize.resolve_model`), and which the
Cedar policies must let this caller use (classification, sensitivity,
region), exactly as if it called the model; the rest of the checks are the
service's (`finetune.service`).  When the gateway runs without fine-tuning,
every route answers 404 `fine_tuning_disabled`.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

from bulkhead.domain import Tenant, TenantContext
from bulkhead.errors import InvalidRequest, NotFound
from bulkhead.finetune.request import parse_create
from bulkhead.finetune.service import FineTuning
from bulkhead.gateway.authorize import resolve_model
from bulkhead.gateway.endpoints import endpoint_of
from bulkhead.policy import Authorizer, Environment, model_resource
from bulkhead.store import Catalog
from bulkhead.web.responses import send_json
from bulkhead.web.scope import Receive, Scope, Send, context, exchange, json_body, note_outcome

MAX_LIMIT = 100


def _query(raw: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(raw.decode("utf-8"), errors="strict", max_num_fields=16))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest(
            "The query string must be UTF-8 with at most 16 fields.", param="query"
        ) from None


def page_args(scope: Scope) -> tuple[str | None, int]:
    """`after` and `limit` (1 to 100, default 20) of a list call."""
    query = _query(scope.get("query_string", b""))
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_LIMIT}.", param="limit")
    after = query.get("after") or None
    if after is not None and len(after) > 64:
        raise InvalidRequest("'after' is not an id.", param="after")
    return after, limit


def listing(data: list[dict[str, object]], more: bool) -> dict[str, object]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


class FineTuningEndpoints:
    def __init__(self, *, service: FineTuning | None, catalog: Catalog, authorizer: Authorizer):
        self.service, self.catalog, self.authorizer = service, catalog, authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = context(scope)
        tenant, endpoint = ctx.tenant, endpoint_of(scope)
        if tenant is None or endpoint is None:  # pragma: no cover - authorize admits neither
            raise NotFound("not found")
        if self.service is None:
            raise NotFound(
                "Fine-tuning is not enabled on this gateway.", code="fine_tuning_disabled"
            )
        action = endpoint.action
        if action == "v1:fine_tuning.jobs.create":
            await self.create(scope, send, ctx)
        elif action == "v1:fine_tuning.jobs.list":
            after, limit = page_args(scope)
            jobs, more = await asyncio.to_thread(
                self.service.jobs.page, tenant.id, after=after, limit=limit
            )
            await send_json(send, 200, listing([j.openai() for j in jobs], more))
        else:
            job_id = endpoint.params(scope["path"])["job_id"]
            exchange(scope).names(resource=job_id)
            await self.one(scope, send, tenant, job_id, action)

    async def create(self, scope: Scope, send: Send, ctx: TenantContext) -> None:
        assert self.service is not None
        request = parse_create(json_body(scope))
        resolved = resolve_model(ctx, self.catalog, request.model)
        env = Environment(client_ip=exchange(scope).client)
        resource = model_resource(resolved.model, ctx.tenant)
        self.authorizer.authorize(ctx, "v1:fine_tuning.jobs.create", resource=resource, env=env)
        job = await self.service.create(ctx, request, resolved)
        exchange(scope).names(resource=job.id)
        note_outcome(scope, created=job.id, target_tenant=None)
        await send_json(send, 200, job.openai())

    async def one(self, scope: Scope, send: Send, tenant: Tenant, job_id: str, action: str) -> None:
        assert self.service is not None
        jobs = self.service.jobs
        if action == "v1:fine_tuning.jobs.cancel":
            job = await self.service.cancel(tenant.id, job_id)
            await send_json(send, 200, job.openai())
        elif action == "v1:fine_tuning.jobs.get":
            job = await asyncio.to_thread(jobs.get, tenant.id, job_id)
            await send_json(send, 200, job.openai())
        elif action == "v1:fine_tuning.jobs.events.list":
            after, limit = page_args(scope)
            events, more = await asyncio.to_thread(
                jobs.events, tenant.id, job_id, after=after, limit=limit
            )
            await send_json(send, 200, listing([e.openai() for e in events], more))
        else:  # checkpoints
            after, limit = page_args(scope)
            job = await asyncio.to_thread(jobs.get, tenant.id, job_id)
            events, more = await asyncio.to_thread(
                jobs.events,
                tenant.id,
                job_id,
                after=_event_id(after),
                limit=limit,
                kind="checkpoint",
            )
            data = [e.checkpoint(job.fine_tuned_model) for e in events]
            await send_json(send, 200, listing(data, more))


def _event_id(checkpoint_id: str | None) -> str | None:
    """A checkpoint's id is its event's (`ftckpt-` for `ftevent-`)."""
    if checkpoint_id is None:
        return None
    return "ftevent-" + checkpoint_id.removeprefix("ftckpt-")
