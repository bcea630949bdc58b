"""The gateway's HTTP/1.1 connection: httptools' parser, one ASGI call per request.

This is the per-connection half of `web.server` (the listener, lifespan and
drain are there).  It does what uvicorn's httptools protocol did for the
gateway, with less work per request and with the limits uvicorn lacks:

* the request head (request line and headers) must arrive within
  `head_timeout_s` of its first byte (empty lines before it included) and
  fit in `MAX_HEAD_BYTES` and `MAX_HEADERS` lines (431 otherwise), so a
  slowloris client holds a connection for seconds, not forever;
* a malformed request — which includes every framing ambiguity llhttp
  refuses: Content-Length with Transfer-Encoding, two Content-Lengths, a
  Transfer-Encoding other than `chunked` alone, obs-fold, bare CR/LF —
  and one with two Host lines gets 400 and the connection closes; if an
  answer to an earlier pipelined request is still going, that answer ends
  first and nothing more is read;
* a chunked body's trailer fields are dropped (their bytes count toward
  `MAX_HEAD_BYTES`): the scope's headers are the head's alone;
* pipelined requests are answered in order, one at a time, and reading
  stops while a request waits its turn (past `MAX_PIPELINED` waiting, which
  one read can hold, the connection closes after the answer in flight);
* an idle keep-alive connection closes after `keep_alive_s`;
* the request body is streamed to the application (`http.request` events,
  reading paused past `h1call.HIGH_WATER` unread bytes); while the
  application waits for more of it, the next bytes must come within
  `body_timeout_s` (408 otherwise: a slow-body client is cut); its size limit is
  the application's (`max_body_bytes`, checked as the body comes), and an
  answer given before the body ended closes the connection after it (the
  rest of a refused body is never read);
* an answer's write waits for a client that does not read for
  `send_timeout_s` at most, then the connection is cut;
* a client gone mid-call, or one that closed its side, is a disconnect:
  `receive` answers `http.disconnect` and `send` becomes a no-op;
* `web.h1call` is the call itself: `Expect: 100-continue`, the response's
  framing, and response headers that could split the response refused.

Over TLS each request's scope carries the ASGI TLS extension with the
client certificate (`web.tls.tls_extension`, computed once per connection).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import httptools

from bulkhead.web.h1call import Call, plain_response
from bulkhead.web.scope import ASGIApp
from bulkhead.web.tls import tls_extension

if TYPE_CHECKING:
    from bulkhead.web.server import ServerConfig

MAX_HEAD_BYTES = 64 * 1024  # request line and headers, as nginx's large_client_header_buffers x 8
MAX_HEADERS = 100
MAX_PIPELINED = 16  # requests waiting their turn on one connection


class HeadTooLarge(Exception):
    """The request head passed `MAX_HEAD_BYTES` or `MAX_HEADERS`."""


class TooDeep(Exception):
    """More than `MAX_PIPELINED` requests wait on one connection: each holds memory."""


class Unframed(Exception):
    """A Transfer-Encoding other than `chunked` alone.  One whose last coding is not
    chunked leaves the body no known end (RFC 9112 6.3), and two servers in a row could
    end it in different places; llhttp refuses some (`xchunked`, `gzip chunked`) only
    after the head's callback has started the call; and no other coding is decoded here,
    so the application would get a body it cannot read."""


class TwoHosts(Exception):
    """Two Host lines (RFC 9112 3.2: 400): the console's Host check reads the first one,
    and a proxy in front may have routed by the other."""


class ServerState:
    """What the connections of one server share: the app, the limits, the drain."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.keep_alive_s = config.keep_alive_s
        self.head_timeout_s = config.head_timeout_s
        self.body_timeout_s = config.body_timeout_s
        self.send_timeout_s = config.send_timeout_s
        self.max_connections = config.max_connections
        self.connections: set[H1Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.app_state: dict[str, Any] = {}  # the lifespan's `state`, copied into each request
        self.draining = False
        # b"date: ...\r\n": renewed by the server on the second while a connection is open,
        # and when the first one opens (`on_first_connection`); read as is by every answer.
        self.date_header = b""
        # Called when the first connection opens: `web.server` renews the date and wakes its
        # tick, which sleeps while no connection is open.
        self.on_first_connection: Callable[[], None] = self.renew_date

    def renew_date(self) -> None:
        self.date_header = b"date: %s\r\n" % formatdate(usegmt=True).encode()


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
        # once-a-second tick while any connection is open: no timer is armed or cancelled
        # per request.
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
        self.expects = False  # the head being parsed asked `Expect: 100-continue`

    # asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        if len(self.state.connections) >= self.state.max_connections:
            self.closed = self.stop_reading = True
            self.transport.write(plain_response(503, "Too many connections; try again later."))
            self.transport.close()
            return
        self.state.connections.add(self)
        if len(self.state.connections) == 1:
            self.state.on_first_connection()
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
            # Any byte starts the head's clock: llhttp skips empty lines before a request
            # line without beginning a message, and they must not hold the connection.
            self._arm(self.state.head_timeout_s, idle=False)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            # Raised by the callbacks above: a head too large, or a request they refuse
            # (Unframed, TwoHosts, TooDeep, a URL httptools cannot split, a path not ASCII).
            if isinstance(error.__context__, HeadTooLarge):
                self._refuse(431, "Request header fields too large.")
            else:
                self._refuse(400, "Invalid HTTP request.")
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
        self.expects = False
        self.in_head = True
        if self.running is None:
            self._arm(self.state.head_timeout_s, idle=False)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge
        if not self.in_head:
            # A chunked body's trailer: counted with the head, never one of its headers
            # (the scope's list, which layers read after authentication too; RFC 9110 6.5.1).
            return
        if len(self.headers) >= MAX_HEADERS:
            raise HeadTooLarge
        # llhttp keeps trailing whitespace, which RFC 9110 5.5 excludes from the value.
        name, value = name.lower(), value.rstrip(b" \t")
        if name == b"transfer-encoding" and value.lower() != b"chunked":
            raise Unframed
        if name == b"host" and any(known == b"host" for known, _ in self.headers):
            raise TwoHosts
        if name == b"expect" and value.lower() == b"100-continue":
            self.expects = True
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
        call = Call(self, scope, keep_alive, self.expects)
        self.parsing = call
        if self.running is None:
            self._start(call)
        else:
            if len(self.queue) >= MAX_PIPELINED:
                raise TooDeep
            self.queue.append(call)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        call = self.parsing
        if call is not None and call is self.running:
            self._disarm()  # the body's timeout: its bytes come (`body_awaited`)
        if call is not None and not call.response_complete:
            call.body_received(body)

    def on_message_complete(self) -> None:
        call = self.parsing
        if call is not None:
            if call is self.running:
                self._disarm()
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
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    async def writable(self) -> None:
        """Wait while the transport's buffer is over its high-water mark, `send_timeout_s`
        at most: a client that stops reading is cut (its call then sees `http.disconnect`
        and its sends do nothing), or it would hold the call, and the upstream stream and
        slots behind it, for as long as it liked.  `abort`, not `close`, which would wait
        for the buffer the client does not read."""
        if self.write_paused and not self.closed:
            waiter = self.write_waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(waiter, self.state.send_timeout_s)
            except TimeoutError:
                if self.transport is not None:
                    self.transport.abort()

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

    def body_awaited(self) -> None:
        """The running call waits in `receive` for bytes only the client can send (reading
        is on): they must come within `body_timeout_s` (a slow-body client is cut, 408)."""
        if self.running is self.parsing and not self.read_paused:
            self._arm(self.state.body_timeout_s, idle=False)

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
        answer 408 to a request head, or a body the call waits for, not come in time."""
        if not self.deadline or now < self.deadline or self.transport is None:
            return
        idle = self.idle
        self._disarm()
        if idle:
            if self.running is None:
                self.transport.close()
        elif self.running is None:
            self._refuse(408, "Request head not received in time.")
        elif self.running is self.parsing and self.running.more_body:
            self._refuse(408, "Request body not received in time.")


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
