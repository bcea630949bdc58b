"""Step 1: give the request an id, open the `Exchange` record, and record how it ended.

The outermost layer: every response, an error's included, passes its
`send` last, so the status it records is the one the client got, and the
layers that settle a call by its outcome (admission, retention, accounting)
read it from the record without depending on any other layer's place.
"""

from __future__ import annotations

import os
import time

from bulkhead.web.scope import (
    EXCHANGE,
    REQUEST_ID,
    ASGIApp,
    Exchange,
    Message,
    Receive,
    Scope,
    Send,
    set_once,
)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A client-sent X-Request-Id is not trusted: ours is the one in the audit log.
        rid = "req_" + os.urandom(12).hex()
        client = scope.get("client")
        set_once(scope, REQUEST_ID, rid)
        ex = Exchange(
            request_id=rid, started=time.perf_counter(), client=client[0] if client else None
        )
        set_once(scope, EXCHANGE, ex)
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.responded(message["status"])
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
