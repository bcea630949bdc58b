"""Steps 5 and 8: the tenant's input guards before the call, output guards after it."""

from __future__ import annotations

from collections.abc import Sequence

from bulkhead.guard import InputGuard
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send, context, json_body, resolved_model


class GuardInMiddleware:
    def __init__(self, app: ASGIApp, *, guards: Sequence[InputGuard]):
        self.app = app
        self.guards = tuple(guards)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.guards and scope["type"] == "http" and resolved_model(scope) is not None:
            ctx, body = context(scope), json_body(scope)
            for guard in self.guards:
                guard.check(ctx, body)
        await self.app(scope, receive, send)
