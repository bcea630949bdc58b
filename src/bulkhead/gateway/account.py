"""Step 9: reconcile the admission ticket and the usage ledger with actual token counts."""

from __future__ import annotations

from bulkhead.gateway.admit import TICKET
from bulkhead.limits import Ticket, UsageLedger
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
            ticket: Ticket | None = scope.get(TICKET)
            if ticket is not None:
                ticket.settle(prompt, completion)
            if ex.tenant_id is not None and ex.status and ex.status < 400:
                self.ledger.add(ex.tenant_id, resolved.model.name, prompt, completion)
