"""Step 8: the tenant's output guards over what the model says, before the caller sees it.

With no guards configured the layer steps aside.  Streaming-aware filtering
with a hold-back window comes with the guard rails; until then each streamed
piece is filtered on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from bulkhead.domain import TenantContext
from bulkhead.guard import OutputGuard
from bulkhead.web.scope import ASGIApp, Message, Receive, Scope, Send, context, resolved_model


def _filter_choices(
    data: dict[str, Any], ctx: TenantContext, guards: Sequence[OutputGuard]
) -> None:
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        for holder in (choice.get("message"), choice.get("delta"), choice):
            if isinstance(holder, dict):
                for field in ("content", "text"):
                    if isinstance(holder.get(field), str):
                        for guard in guards:
                            holder[field] = guard.filter(ctx, holder[field])


def filter_body(body: bytes, ctx: TenantContext, guards: Sequence[OutputGuard]) -> bytes:
    if body.startswith(b"data: {"):
        data = orjson.loads(body[6:])
        _filter_choices(data, ctx, guards)
        return b"data: " + orjson.dumps(data) + b"\n\n"
    if body.startswith(b"{"):
        data = orjson.loads(body)
        _filter_choices(data, ctx, guards)
        return orjson.dumps(data)
    return body


class GuardOutMiddleware:
    def __init__(self, app: ASGIApp, *, guards: Sequence[OutputGuard]):
        self.app = app
        self.guards = tuple(guards)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.guards or scope["type"] != "http" or resolved_model(scope) is None:
            await self.app(scope, receive, send)
            return
        ctx = context(scope)

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message["body"] = filter_body(message["body"], ctx, self.guards)
            await send(message)

        await self.app(scope, receive, guarded_send)
