"""Step 5: the tenant's input guards, before the request is routed anywhere.

For chat, completions and embeddings the tenant's `Guard` checks and
rewrites the body (secrets and personal data redacted, masked or
pseudonymised; a blocked entity or injection refused; logprobs refused
unless allowed) and puts a fresh canary in the system prompt.  The
rewritten body replaces the parsed one in the scope, so the call sends it;
the vault and canary go to the output layer under `GUARDED`.  Only the
tenant's settings decide: nothing in the body or headers turns a guard off.

The audit record gets the findings' labels (`pii:email`, `injection:…`),
the anomaly detector a hit per kind; matched text goes nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from bulkhead.domain import TenantContext
from bulkhead.errors import ContentBlocked
from bulkhead.gateway import validate
from bulkhead.gateway.guards import GuardBook, GuardedCall, GuardHit, report
from bulkhead.guard import Canary, Guard, inject_canary
from bulkhead.web.scope import (
    BODY,
    CONTEXT,
    JSON,
    ASGIApp,
    Receive,
    Scope,
    Send,
    exchange,
    json_body,
    resolved_model,
)

GUARDED = "bulkhead.guarded"
"""Scope key of this request's `GuardedCall`, set here and read by the output layer."""

# The shape checks run first, so a malformed body is refused with the client's own
# indices before the canary shifts its messages.
_CHECKS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "/v1/chat/completions": validate.chat,
    "/v1/completions": validate.completions,
    "/v1/embeddings": validate.embeddings,
}


class GuardInMiddleware:
    def __init__(self, app: ASGIApp, *, guards: GuardBook | None, on_hit: GuardHit | None = None):
        self.app = app
        self.guards = guards
        self.on_hit = on_hit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx: TenantContext | None = scope.get(CONTEXT) if scope["type"] == "http" else None
        check = _CHECKS.get(scope["path"]) if scope["type"] == "http" else None
        tenant = ctx.tenant if ctx is not None else None
        if self.guards is None or check is None or tenant is None or not resolved_model(scope):
            await self.app(scope, receive, send)
            return
        assert ctx is not None
        body = json_body(scope)
        check(body)
        guard = self.guards.for_tenant(tenant)
        scope[GUARDED] = self._scan(scope, ctx, guard, body)
        try:
            await self.app(scope, receive, send)
        finally:
            # The vault holds this request's personal data: drop it with the response.
            del scope[GUARDED]

    def _scan(
        self, scope: Scope, ctx: TenantContext, guard: Guard, body: dict[str, Any]
    ) -> GuardedCall:
        """Check and rewrite the body in the scope; raise to refuse it."""
        ex = exchange(scope)
        try:
            verdict = guard.scan_request(body)
        except ContentBlocked as exc:
            ex.decision = "deny"
            report(self.on_hit, ctx, ex, exc.reasons)
            raise
        report(self.on_hit, ctx, ex, verdict.reasons())
        canary = Canary.generate()
        if verdict.body is not body:
            # What is kept of the request (retention) is what the guards let through.
            scope[BODY] = orjson.dumps(verdict.body)
        scope[JSON] = inject_canary(verdict.body, canary) if guard.config.canary else verdict.body
        return GuardedCall(guard, verdict.vault, canary)
