"""Step 4: admission control (rate limits, budgets, concurrency) before a model call."""

from __future__ import annotations

from bulkhead.limits import Admission
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send, context, json_body, resolved_model

TICKET = "bulkhead.ticket"


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, admission: Admission):
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = resolved_model(scope) if scope["type"] == "http" else None
        if resolved is not None:
            scope[TICKET] = self.admission.admit(
                context(scope), resolved.model.name, json_body(scope)
            )
        await self.app(scope, receive, send)
