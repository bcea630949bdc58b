"""Outermost layer: turns any error raised below into one OpenAI-format response.

Once answered, the error's traceback lets go of the frames it passed through:
their locals hold the request (a refused body may be megabytes, parsed into
tens of thousands of objects), and a frame that also holds the error makes a
cycle that only the collector frees, in a pause of tens of milliseconds for
every request waiting on the event loop.
"""

from __future__ import annotations

import logging
import traceback

import orjson

from bulkhead.errors import BulkheadError, http_error
from bulkhead.web.scope import REQUEST_ID, ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("bulkhead.gateway")


class ErrorMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            try:
                await self._answer(exc, scope, send, started=started)
            finally:
                traceback.clear_frames(exc.__traceback__)
                exc.__traceback__ = None

    @staticmethod
    async def _answer(exc: Exception, scope: Scope, send: Send, *, started: bool) -> None:
        if not isinstance(exc, BulkheadError):
            log.exception("unhandled error", extra={"request_id": scope.get(REQUEST_ID)})
        status, headers, body = http_error(exc)
        if not started:
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        else:
            # The stream has begun: end it with an error event the client can read.
            event = b"data: " + orjson.dumps(orjson.loads(body)) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": False})
