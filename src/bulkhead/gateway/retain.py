"""Step 8½: keep the exchange, encrypted, for tenants whose retention is `encrypted`.

Sits outside the output guards, so what is kept is what the caller was
sent.  The default retention (`none`) makes this layer step aside at the
cost of one attribute check; nothing is buffered or stored.
"""

from __future__ import annotations

from bulkhead.store.retention import MAX_CAPTURE, Captured, RetentionStore
from bulkhead.web.scope import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    context,
    exchange,
    kept_body,
    resolved_model,
)


class RetentionMiddleware:
    def __init__(self, app: ASGIApp, *, store: RetentionStore):
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = resolved_model(scope) if scope["type"] == "http" else None
        tenant = context(scope).tenant if resolved is not None else None
        if resolved is None or not self.store.wanted(tenant):
            await self.app(scope, receive, send)
            return
        assert tenant is not None
        self.store.admit(tenant)  # fail closed while the writer cannot keep up
        kept = bytearray()
        truncated = False

        async def capture(message: Message) -> None:
            nonlocal truncated
            if message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                room = MAX_CAPTURE - len(kept)
                truncated = truncated or len(chunk) > room
                kept.extend(chunk[: max(room, 0)])
            await send(message)

        await self.app(scope, receive, capture)
        ex = exchange(scope)  # its status was recorded by the outermost layer as it went out
        if ex.status and ex.status < 400:
            request = kept_body(scope)  # what the input guards let through
            self.store.submit(
                Captured(
                    tenant=tenant,
                    request_id=ex.request_id,
                    model=resolved.model.name,
                    request=request[:MAX_CAPTURE],
                    response=bytes(kept),
                    truncated=truncated or len(request) > MAX_CAPTURE,
                )
            )
