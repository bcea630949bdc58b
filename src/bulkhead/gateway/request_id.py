"""Step 1: give the request an id, open the `Exchange` record, and record how it ended.

The outermost layer: every response, an error's included, passes its
`send` last, so the status it records is the one the client got, and the
layers that settle a call by its outcome (admission, retention, accounting)
read it from the record without depending on any other layer's place.
"""

from __future__ import annotations

import os
import time
import weakref

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

_LIVE: weakref.WeakSet[_Ids] = weakref.WeakSet()


def _after_fork() -> None:
    for ids in list(_LIVE):
        ids.reset()


os.register_at_fork(after_in_child=_after_fork)


class _Ids:
    """Random request ids from the OS's generator, 341 per `getrandom` call, not one each.

    One per middleware (so per event loop: no two threads share one); a forked child
    drops the block it inherited, or parent and child would hand out the same ids."""

    SIZE = 12

    def __init__(self) -> None:
        self._block, self._at = b"", 0
        _LIVE.add(self)

    def reset(self) -> None:
        self._block, self._at = b"", 0

    def next(self) -> str:
        if self._at + self.SIZE > len(self._block):
            self._block, self._at = os.urandom(self.SIZE * 341), 0
        at, self._at = self._at, self._at + self.SIZE
        return "req_" + self._block[at : at + self.SIZE].hex()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app
        self._ids = _Ids()  # used by the event loop's thread alone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A client-sent X-Request-Id is not trusted: ours is the one in the audit log.
        rid = self._ids.next()
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
