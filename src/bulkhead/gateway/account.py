"""Step 9: add the call's actual token counts to the usage ledger (admission settles its own)."""

from __future__ import annotations

from bulkhead.limits import UsageLedger
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send, exchange, resolved_model


class AccountingMiddleware:
    def __init__(self, app: ASGIApp, *, ledger: UsageLedger):
        self.app = app
        self.ledger = ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = resolved_model(scope) if scope["type"] == "http" else None
        if resolved is None:
            await self.app(scope, receive, send)
            return
        ex = exchange(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            prompt, completion = ex.prompt_tokens or 0, ex.completion_tokens or 0
            if ex.tenant_id is not None and ex.status and ex.status < 400:
                self.ledger.add(ex.tenant_id, resolved.model.name, prompt, completion)
