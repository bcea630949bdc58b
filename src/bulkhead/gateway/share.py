"""Step 6b: a call to a shared deployment waits for a slot, fairly across tenants.

Shared models run on capacity that many tenants use; a `SharedCapacity`
hands out its slots fairly — `bulkhead.limits.fairshare` in one process
(weighted deficit round robin), `bulkhead.limits.redis_share` across the
replicas on one Redis (leased slots, weighted shares) — with each tenant's
weight from its tier (or its own `share_weight`).  A tenant's private models
run on its own deployments and pass straight through.

When Redis is down the call is refused with a 503 (fail closed), unless the
tenant's configuration says `limits_fail_open`: then it goes through without
a slot and `on_fail_open` is told (the same alert and audit event as the
limiter's).
"""

from __future__ import annotations

from collections.abc import Callable

from bulkhead.domain import TenantContext
from bulkhead.limits.fairshare import SharedCapacity, Slot
from bulkhead.limits.limiter import LimiterUnavailable
from bulkhead.limits.policy import effective_one
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send, context, resolved_model


class FairShareMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        queues: SharedCapacity | None,
        on_fail_open: Callable[[TenantContext], None] | None = None,
    ):
        self.app = app
        self.queues = queues
        self.on_fail_open = on_fail_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = resolved_model(scope) if scope["type"] == "http" else None
        ctx = context(scope) if resolved is not None else None
        tenant = ctx.tenant if ctx is not None else None
        if self.queues is None or resolved is None or tenant is None or not resolved.model.shared:
            await self.app(scope, receive, send)
            return
        assert ctx is not None
        deployment = resolved.deployment
        weight = effective_one(tenant.tier, tenant.quotas, "share_weight") or 1
        slot: Slot | None = None
        try:
            slot = await self.queues.acquire(deployment.id, deployment.options, tenant.id, weight)
        except LimiterUnavailable:
            if not tenant.config.limits_fail_open:
                raise
            if self.on_fail_open is not None:
                self.on_fail_open(ctx)
        try:
            await self.app(scope, receive, send)
        finally:
            if slot is not None:
                slot.release()
