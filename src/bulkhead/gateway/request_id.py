"""Step 1: give the request an id and open the `Exchange` record the chain fills in."""

from __future__ import annotations

import os
import time

from bulkhead.web.scope import EXCHANGE, ASGIApp, Exchange, Message, Receive, Scope, Send


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
        scope["bulkhead.rid"] = rid
        scope[EXCHANGE] = Exchange(
            request_id=rid, started=time.perf_counter(), client=client[0] if client else None
        )
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
