"""The gateway's HTTP/1.1 connection: httptools' parser, one ASGI call per request.

This is the per-connection half of `web.server` (the listener, lifespan and
drain are there).  It does what uvicorn's httptools protocol did for the
gateway, with less work per request and with the limits uvicorn lacks:

* the request head (request line and headers) must arrive within
  `head_timeout_s` of its first byte and fit in `MAX_HEAD_BYTES` and
  `MAX_HEADERS` lines (431 otherwise), so a slowloris client holds a
  connection for seconds, not forever;
* a malformed request — which includes every framing ambiguity llhttp
  refuses: Content-Length with Transfer-Encoding, two Content-Lengths, a
  Transfer-Encoding that does not end in chunked, obs-fold, bare CR/LF —
  gets 400 and the connection closes; if an answer to an earlier pipelined
  request is still going, that answer ends first and nothing more is read;
* pipelined requests are answered in order, one at a time, and reading
  stops while a request waits its turn;
* an idle keep-alive connection closes after `keep_alive_s`;
* the request body is streamed to the application (`http.request` events,
  reading paused past `HIGH_WATER` unread bytes); its size limit is the
  application's (`max_body_bytes`, checked as the body comes);
* `Expect: 100-continue` is answered when the application first asks for
  the body, so a body it refuses unread is never sent;
* a client gone mid-call: `receive` answers `http.disconnect` and `send`
  becomes a no-op;
* the response: `content-length` when the application gives one, chunked
  otherwise (server-sent events), nothing for HEAD, 204 and 304; a header
  name or value that could split the response is refused (RuntimeError:
  the application's bug, answered 500 or the connection cut).

Over TLS each request's scope carries the ASGI TLS extension with the
client certificate (`web.tls.tls_extension`, computed once per connection).
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from collections import deque
from typing import Any, cast
from urllib.parse import unquote

import httptools

from bulkhead.web.scope import ASGIApp, Message
from bulkhead.web.tls import tls_extension

MAX_HEAD_BYTES = 64 * 1024  # request line and headers, as nginx's large_client_header_buffers x 8
MAX_HEADERS = 100
HIGH_WATER = 64 * 1024  # unread body bytes before reading pauses

_log = logging.getLogger("bulkhead.web")
_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
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
    return b"%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % (
        STATUS_LINES[status],
        len(body),
    ) + b"connection: close\r\n\r\n" + body


class HeadTooLarge(Exception):
    """The request head passed `MAX_HEAD_BYTES` or `MAX_HEADERS`."""


class Unframed(Exception):
    """A Transfer-Encoding whose last coding is not chunked: the body has no known end
    (RFC 9112 6.3), and two servers in a row could end it in different places."""


class ServerState:
    """What the connections of one server share: the app, the limits, the drain."""

    def __init__(self, app: ASGIApp, keep_alive_s: float, head_timeout_s: float) -> None:
        self.app = app
        self.keep_alive_s = keep_alive_s
        self.head_timeout_s = head_timeout_s
        self.connections: set[H1Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.app_state: dict[str, Any] = {}  # the lifespan's `state`, copied into each request
        self.date_header = b""  # b"date: ...\r\n", renewed by the server's tick
        self.draining = False


class H1Connection(asyncio.Protocol):
    """One client connection (see the module)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.tls: dict[str, Any] | None = None
        # When the connection times out (loop time; 0: never), checked by the server's
        # once-a-second tick: no timer is armed or cancelled per request.
        self.deadline = 0.0
        self.idle = False  # the deadline is the keep-alive one, which any byte lifts
        self.in_head = False  # a request head has begun and not ended
        self.read_paused = False
        self.write_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.closed = False
        self.stop_reading = False  # a malformed request followed the running one
        # The request being parsed, and the one whose call runs (the same but when pipelined).
        self.parsing: Call | None = None
        self.running: Call | None = None
        self.queue: deque[Call] = deque()
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0

    # asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        self.state.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        self.tls = tls_extension(transport)
        if self.tls is not None:
            self.scheme = "https"
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        self._disarm()
        for call in (self.running, *self.queue):
            if call is not None:
                call.disconnect()
        self.queue.clear()
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.stop_reading:
            return
        if self.idle:
            self._disarm()  # the head timer starts in on_message_begin
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, HeadTooLarge):
                self._refuse(431, "Request header fields too large.")
            elif isinstance(error.__context__, Unframed):
                self._refuse(400, "Invalid HTTP request.")
            else:
                raise
        except httptools.HttpParserUpgrade:
            # No protocol switch here (HTTP only): the request is answered, then the
            # connection closes, and what came after its head is not read.
            if self.parsing is not None:
                self.parsing.keep_alive = False
            self._stop()
        except httptools.HttpParserError:
            self._refuse(400, "Invalid HTTP request.")

    def eof_received(self) -> bool:
        # The client closed its side: as uvicorn did, the connection closes and a call in
        # flight is told `http.disconnect` (a client gone mid-call stops its upstream call).
        return False

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_bytes = 0
        self.in_head = True
        if self.running is None:
            self._arm(self.state.head_timeout_s, idle=False)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if len(self.headers) >= MAX_HEADERS:
            raise HeadTooLarge
        # llhttp keeps trailing whitespace, which RFC 9110 5.5 excludes from the value.
        name, value = name.lower(), value.rstrip(b" \t")
        if name == b"transfer-encoding" and not value.lower().endswith(b"chunked"):
            raise Unframed
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._disarm()
        parser = self.parser
        version = parser.get_http_version()
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("ascii")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": "",
            "path": unquote(path) if "%" in path else path,
            "raw_path": raw_path,
            "query_string": parsed.query or b"",
            "headers": self.headers,
            "state": self.state.app_state.copy(),
        }
        if self.tls is not None:
            scope["extensions"] = {"tls": self.tls}
        keep_alive = version == "1.1" and parser.should_keep_alive() and not self.state.draining
        call = Call(self, scope, keep_alive)
        self.parsing = call
        if self.running is None:
            self._start(call)
        else:
            self.queue.append(call)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        call = self.parsing
        if call is not None and not call.response_complete:
            call.body_received(body)

    def on_message_complete(self) -> None:
        call = self.parsing
        if call is not None:
            call.more_body = False
            call.wake()

    # The calls ----------------------------------------------------------------------

    def _start(self, call: Call) -> None:
        self.running = call
        task = self.loop.create_task(call.run(self.state.app))
        call.task = task
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    def call_done(self, call: Call) -> None:
        """`call` answered in full: close, start the next pipelined call, or wait."""
        self.running = None
        if self.parsing is call:
            self.parsing = None
        if self.closed:
            return
        if not call.keep_alive or self.stop_reading:
            assert self.transport is not None
            self.transport.close()
            return
        if self.queue:
            self._start(self.queue.popleft())
        else:
            self._resume_reading()
            if self.in_head:  # the next request's head has begun arriving
                self._arm(self.state.head_timeout_s, idle=False)
            elif self.parsing is None:
                self._arm_idle()

    def drain(self) -> None:
        """The server drains: a call whose answer has not begun closes its connection
        after it; an idle connection is left to its client or the keep-alive timeout."""
        for call in (self.running, *self.queue):
            if call is not None and not call.response_started:
                call.keep_alive = False

    def abort(self) -> None:
        """The grace period is over: cut the connection and what is still running."""
        if self.transport is not None:
            self.transport.close()
        call = self.running
        if call is not None and call.task is not None:
            call.task.cancel()

    # Helpers ------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def writable(self) -> None:
        """Wait while the transport's buffer is over its high-water mark."""
        if self.write_paused and not self.closed:
            waiter = self.write_waiter = self.loop.create_future()
            await waiter

    def _count(self, n: int) -> None:
        self.head_bytes += n
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def _refuse(self, status: int, text: str) -> None:
        """A request that cannot be answered by the application: answer it ourselves and
        close, or, while an earlier pipelined call answers, close once it has."""
        self._stop()
        assert self.transport is not None
        call = self.running
        if call is not None and call is self.parsing and call.more_body:
            # Its body is malformed (a bad chunk): the call cannot have it.
            if not call.response_started:
                self.transport.write(plain_response(status, text))
            call.disconnect()
            self.transport.close()
        elif call is None:
            self.transport.write(plain_response(status, text))
            self.transport.close()
        # else call_done closes after the answer in flight.

    def _stop(self) -> None:
        """Read no more from this connection."""
        self.stop_reading = True
        self.queue.clear()
        self._pause_reading()

    def _pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and not self.stop_reading and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()

    def body_paused(self) -> None:
        self._pause_reading()

    def body_wanted(self) -> None:
        if self.running is self.parsing:
            self._resume_reading()

    def _arm(self, delay: float, idle: bool) -> None:
        self.deadline = self.loop.time() + delay
        self.idle = idle

    def _arm_idle(self) -> None:
        self._arm(self.state.keep_alive_s, idle=True)

    def _disarm(self) -> None:
        self.deadline = 0.0
        self.idle = False

    def check_deadline(self, now: float) -> None:
        """The server's tick: close an idle connection past its keep-alive timeout, and
        answer 408 to a request head that has not ended in time."""
        if not self.deadline or now < self.deadline or self.transport is None:
            return
        idle = self.idle
        self._disarm()
        if idle:
            if self.running is None:
                self.transport.close()
        elif self.running is None:
            self._refuse(408, "Request head not received in time.")


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


class Call:
    """One request and its answer: the ASGI `receive` and `send` of one call."""

    __slots__ = (
        "body",
        "chunked",
        "conn",
        "continue_wanted",
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

    def __init__(self, conn: H1Connection, scope: dict[str, Any], keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.head = scope["method"] == "HEAD"
        self.body = bytearray()
        self.more_body = True
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.held = b""  # the response head, not yet written (see `_start`)
        self.chunked = scope["http_version"] == "1.1"  # without a content-length
        self.remaining = -1  # bytes the content-length promised and not yet sent; -1 none
        self.continue_wanted = any(
            name == b"expect" and value.lower() == b"100-continue"
            for name, value in scope["headers"]
        )

    # From the connection ------------------------------------------------------------

    def body_received(self, data: bytes) -> None:
        self.body += data
        if len(self.body) > HIGH_WATER:
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
            _log.exception("the application failed on %s %s", self.scope["method"], self.scope["path"])
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
        while not self.body and self.more_body and not self.disconnected and not self.response_complete:
            self.conn.body_wanted()
            self.waiter = self.conn.loop.create_future()
            await self.waiter
            self.waiter = None
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = bytes(self.body)
        self.body.clear()
        if len(body) > 0:
            self.conn.body_wanted()
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
        headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
        names = b"".join(name for name, _ in headers)
        values = b"".join(value for _, value in headers)
        if _BAD_NAME.search(names) or _BAD_VALUE.search(values) or not all(n for n, _ in headers):
            raise RuntimeError("a response header name or value holds a forbidden character")
        self.response_started = True
        self.continue_wanted = False
        lines = [STATUS_LINES[status], self.conn.state.date_header]
        close_asked = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                self.remaining = int(value)
                continue  # written below, once
            elif lower == b"transfer-encoding":
                continue  # the framing is this server's to choose
            elif lower == b"connection":
                if b"close" in value.lower():
                    close_asked = True
                    self.keep_alive = False
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
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
