"""Outermost layer: turns any error raised below into one OpenAI-format response.

Once answered, the error's traceback lets go of the frames it passed through:
their locals hold the request (a refused body may be megabytes, parsed into
tens of thousands of objects), and a frame that also holds the error makes a
cycle that only the collector frees, in a pause of tens of milliseconds for
every request waiting on the event loop.

One answer is not an error body: a console page (`GET /console…`, not its
API or static files) asked without a live session is sent to the console's
sign-in page (303), since a person, not a program, asked for it.  And a
session cookie that failed authentication (expired, signed out, revoked, not
a session at all) is cleared in the same answer, so the browser stops
sending a dead credential.
"""

from __future__ import annotations

import logging
import traceback

import orjson

from bulkhead.errors import BulkheadError, Unauthenticated, http_error
from bulkhead.web.cookies import clear_cookie
from bulkhead.web.scope import COOKIE_SESSION, REQUEST_ID, ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("bulkhead.gateway")
SIGN_IN_PAGE = b"/console/login"


def _console_page(scope: Scope) -> bool:
    path: str = scope["path"]
    page = path == "/console" or path.startswith("/console/")
    return (
        page
        and scope["method"] == "GET"
        # The OIDC sign-in's routes answer their refusals as they are: a redirect would
        # hide why the sign-in failed.
        and not path.startswith(("/console/api/", "/console/static/", "/console/login/oidc"))
    )


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
        if not started and isinstance(exc, Unauthenticated) and _console_page(scope):
            status, body = 303, b""
            headers = [(b"location", SIGN_IN_PAGE), (b"cache-control", b"no-store")]
        if not started and isinstance(exc, Unauthenticated) and COOKIE_SESSION in scope:
            headers.append(clear_cookie())
        if not started:
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        else:
            # The stream has begun: end it with an error event the client can read.
            event = b"data: " + orjson.dumps(orjson.loads(body)) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": False})
