"""One request and its answer on a `web.h1server` connection: the ASGI `receive` and `send`.

`receive` hands the body over as it comes (sending `100 Continue` first when
the client asked for it) and `http.disconnect` once the client is gone;
`send` writes the answer: `content-length` when the application gives one,
chunked otherwise (HTTP/1.0: to the close), no body for HEAD, 204 and 304,
and a header that could split the response refused.  The head is held back
until the first piece of the body (or the loop's next turn), so most
answers are one write: one system call.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import TYPE_CHECKING, Any

from bulkhead.web.scope import ASGIApp, Message

if TYPE_CHECKING:
    from bulkhead.web.h1server import H1Connection

HIGH_WATER = 64 * 1024  # unread body bytes before reading pauses

_log = logging.getLogger("bulkhead.web")
# What a header name may hold (a token, RFC 9110 5.6.2) and what a value may (anything but a
# control, tab aside): deleting them from the names, or the values, must leave nothing.
# `bytes.translate` does it in C at a byte a step, about twice as fast as a regex search.
TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VALUE_BYTES = bytes(b for b in range(256) if b == 0x09 or 0x20 <= b != 0x7F)
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))
_NO_BODY_STATUS = frozenset((204, 304))


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}


def plain_response(status: int, text: str) -> bytes:
    """A whole `connection: close` answer the server makes itself (400, 408, 431, 500)."""
    body = text.encode()
    return (
        b"%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
        % (
            STATUS_LINES[status],
            len(body),
        )
        + b"connection: close\r\n\r\n"
        + body
    )


class Call:
    """One request and its answer: the ASGI `receive` and `send` of one call."""

    __slots__ = (
        "body",
        "buffered",
        "chunked",
        "conn",
        "continue_wanted",
        "delivered",
        "disconnected",
        "head",
        "held",
        "keep_alive",
        "more_body",
        "remaining",
        "response_complete",
        "response_started",
        "scope",
        "task",
        "waiter",
    )

    def __init__(
        self, conn: H1Connection, scope: dict[str, Any], keep_alive: bool, expects: bool = False
    ) -> None:
        """`expects`: the head asked `Expect: 100-continue` (the connection saw it as it
        parsed the headers, so they are not walked again here)."""
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.head = scope["method"] == "HEAD"
        # The body's pieces as httptools gave them (each its own bytes): a body that came
        # in one piece is handed over as it is, not copied.
        self.body: list[bytes] = []
        self.buffered = 0
        self.more_body = True
        self.delivered = False  # the body's last `http.request` was handed over
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.held = b""  # the response head, not yet written (see `_start`)
        self.chunked = scope["http_version"] == "1.1"  # without a content-length
        self.remaining = -1  # bytes the content-length promised and not yet sent; -1 none
        # RFC 9110 10.1.1: an HTTP/1.0 client's expectation is ignored (it may take the
        # interim answer for the final one).
        self.continue_wanted = expects and scope["http_version"] == "1.1"

    # From the connection ------------------------------------------------------------

    def body_received(self, data: bytes) -> None:
        self.body.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER:
            self.conn.body_paused()
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def disconnect(self) -> None:
        if not self.response_complete:
            self.disconnected = True
        self.wake()

    async def run(self, app: ASGIApp) -> None:
        """The application's call; what it leaves unanswered is answered or cut here."""
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._cut()
            raise
        except Exception:
            # The path as sent (percent-encoded, so printable ASCII), not the decoded one,
            # where a client's `%0a` would begin a log line of its own.
            path = self.scope["raw_path"].decode("ascii", "replace")
            _log.exception("the application failed on %s %s", self.scope["method"], path)
            self._fail()
        else:
            if not self.response_complete and not self.disconnected:
                _log.error("the application returned without completing its answer")
                self._fail()

    def _fail(self) -> None:
        if self.response_started:
            self._cut()
        elif not self.disconnected:
            self.response_started = self.response_complete = True
            self.conn.write(plain_response(500, "Internal Server Error"))
            self.keep_alive = False
            self.conn.call_done(self)

    def _cut(self) -> None:
        if not self.response_complete:
            self.response_complete = True
            self.keep_alive = False
            if self.conn.transport is not None:
                self.conn.transport.close()
            self.conn.call_done(self)

    # ASGI ---------------------------------------------------------------------------

    async def receive(self) -> Message:
        if self.continue_wanted:
            self.continue_wanted = False
            if self.more_body and not self.disconnected:
                self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        # Once the whole body was handed over, `receive` waits for the client to go or
        # the answer to end (an application may listen for a disconnect while it streams).
        while (
            (self.delivered or (not self.body and self.more_body))
            and not self.disconnected
            and not self.response_complete
        ):
            self.conn.body_wanted()
            if not self.delivered:
                self.conn.body_awaited()
            self.waiter = self.conn.loop.create_future()
            await self.waiter
            self.waiter = None
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        pieces = self.body
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        self.buffered = 0
        if len(body) > 0:
            self.conn.body_wanted()
        self.delivered = not self.more_body
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: Message) -> None:
        if self.conn.write_paused:
            await self.conn.writable()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self._start(message)
        elif not self.response_complete:
            if kind != "http.response.body":
                raise RuntimeError(f"expected http.response.body, got {kind!r}")
            self._body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"{kind!r} sent after the answer was complete")

    def _start(self, message: Message) -> None:
        status: int = message["status"]
        status_line = STATUS_LINES[status]  # KeyError for a status that is no HTTP status
        lines = [status_line, self.conn.state.date_header]
        names: list[bytes] = []
        values: list[bytes] = []
        framing: list[tuple[bytes, bytes]] = []  # the framing is this server's to write
        for name, value in message.get("headers", ()):
            names.append(name)
            values.append(value)
            lower = name.lower()
            if lower in _FRAMING:
                framing.append((lower, value))
            else:
                lines += (name, b": ", value, b"\r\n")
        # A name is a token and a value holds no control but tab: both hold of each character,
        # so one pass over all the names, and one over all the values, check every header.
        if (
            b"".join(names).translate(None, TOKEN_BYTES)
            or b"".join(values).translate(None, VALUE_BYTES)
            or not all(names)
        ):
            raise RuntimeError("a response header name or value holds a forbidden character")
        self.response_started = True
        self.continue_wanted = False
        if self.more_body:  # answered before its body ended (413): the rest is not read
            self.keep_alive = False
        close_asked = False
        for lower, value in framing:
            if lower == b"content-length":
                self.remaining = int(value)
            elif lower == b"connection" and b"close" in value.lower():
                close_asked = True
                self.keep_alive = False
        if not self.keep_alive or close_asked:
            lines.append(b"connection: close\r\n")
        if self.remaining >= 0:
            lines.append(b"content-length: %d\r\n" % self.remaining)
            self.chunked = False
        elif self.head or status in _NO_BODY_STATUS:
            self.chunked = False
        elif self.chunked:
            lines.append(b"transfer-encoding: chunked\r\n")
        else:  # HTTP/1.0 without a length: the body runs to the close
            self.keep_alive = False
        lines.append(b"\r\n")
        # The head goes out with the first piece of the body, in one write (one system call
        # for most answers), or at the loop's next turn if the application awaits first.
        self.held = b"".join(lines)
        self.conn.loop.call_soon(self._flush)
        if self.head or status in _NO_BODY_STATUS:
            self.remaining = 0

    def _flush(self) -> None:
        if self.held and not self.disconnected:
            self.conn.write(self.held)
        self.held = b""

    def _body(self, body: bytes, more_body: bool) -> None:
        if self.head:
            body = b""
        elif self.chunked:
            if body:
                body = b"%x\r\n%s\r\n" % (len(body), body)
            if not more_body:
                body += b"0\r\n\r\n"
        elif body and self.remaining >= 0:
            if len(body) > self.remaining:
                raise RuntimeError("the answer is longer than its content-length")
            self.remaining -= len(body)
        if self.held:
            if len(body) > HIGH_WATER:  # a large piece: two writes rather than a copy
                self.conn.write(self.held)
            else:
                body = self.held + body
            self.held = b""
        if body:
            self.conn.write(body)
        if not more_body:
            if self.remaining > 0 and not self.head:
                raise RuntimeError("the answer is shorter than its content-length")
            self.response_complete = True
            self.wake()
            self.conn.call_done(self)
