"""Step 6b: a call to a shared deployment waits for a slot, fairly across tenants.

Shared models run on capacity that many tenants use; `bulkhead.limits.fairshare`
hands out its slots by weighted deficit round robin, with each tenant's
weight from its tier (or its own `share_weight`).  A tenant's private models
run on its own deployments and pass straight through.
"""

from __future__ import annotations

from bulkhead.limits.fairshare import FairQueues
from bulkhead.limits.policy import effective
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send, context, resolved_model


class FairShareMiddleware:
    def __init__(self, app: ASGIApp, *, queues: FairQueues | None):
        self.app = app
        self.queues = queues

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = resolved_model(scope) if scope["type"] == "http" else None
        tenant = context(scope).tenant if resolved is not None else None
        if self.queues is None or resolved is None or tenant is None or not resolved.model.shared:
            await self.app(scope, receive, send)
            return
        deployment = resolved.deployment
        queue = self.queues.for_deployment(deployment.id, deployment.options)
        await queue.acquire(tenant.id, effective(tenant.tier, tenant.quotas)["share_weight"] or 1)
        try:
            await self.app(scope, receive, send)
        finally:
            queue.release(tenant.id)
