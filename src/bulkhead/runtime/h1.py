"""One HTTP/1.1 client connection to an upstream: an asyncio protocol around `httptools`.

The upstream client's own transport (`bulkhead.runtime.h1pool`) writes one
request at a time onto a `Connection` and reads its response through
`Response`, which has the shape `bulkhead.runtime.upstream` reads (status,
headers, declared length, `content.iter_any()`, `read()`).  It is thinner
than aiohttp's client on purpose: the parser is llhttp (C), the body is
handed over in whatever pieces arrived, and the only timer is the read
timeout of the one wait in progress.  That timeout runs from the request
(for the whole head) or from the last body bytes (for each wait on the
body): bytes that are no progress, a head dribbled a byte at a time or a
chunk extension without end, do not restart it.

What an upstream may be is hostile, so the connection holds to bounds while
it reads, not after: a head over `MAX_HEAD_BYTES` (and as much again of
anything that is no body, chunk framing, extensions or trailers, between two
pieces of body) or with an informational status is malformed; trailers are
read and dropped; body bytes not yet read by the caller pause the socket
past `HIGH_WATER` (the caller's own bounds on the answer and on an SSE event
then hold, whatever the upstream sends); anything the upstream sends while
no request is outstanding breaks the connection.  A response ends by its
`Content-Length`, its last chunk, or (neither declared) the connection's
clean close.  A connection may be reused only if its response ended
cleanly, was read to its end, and both sides keep it alive
(`Connection.reusable`); anything else closes it.

The request is written whole from what the client prepared; a header name
that is not a token, or a name or value with CR, LF or NUL, refuses the
request before a byte is sent (`RequestRefused`), as does a path with
controls or spaces.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import cast

import httptools

from bulkhead.errors import UpstreamError

MAX_HEAD_BYTES = 64 * 1024
"""The status line and headers of a response (aiohttp allows about 32 KiB of headers); also
the most of what is no body (chunk framing, extensions, trailers) between two pieces of body."""
HIGH_WATER = 256 * 1024
"""Body bytes buffered and not yet read past which the socket stops being read."""
LINGER_BYTES = 64 * 1024
"""Body bytes a connection reads on to its response's end after its caller stopped reading."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")


class RequestRefused(UpstreamError):
    """A request the client will not write: a header or path that could inject a header."""


class MalformedResponse(ConnectionError):
    """The upstream's bytes are no HTTP/1.1 response (an `OSError`: a 502 like a lost link)."""


class ConnectionCut(ConnectionError):
    """The connection ended before the response did."""


def encode_request(
    method: str, target: str, host: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    """The request's bytes; `RequestRefused` for anything that could smuggle a header in."""
    if _BAD_TARGET.search(target) or _BAD_VALUE.search(host) or not target.startswith("/"):
        raise RequestRefused("The upstream request's URL is not valid.")
    parts = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise RequestRefused("The upstream request's headers are not valid.")
        if name.lower() not in ("host", "content-length", "transfer-encoding", "connection"):
            parts.append(f"{name}: {value}\r\n")
    parts.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "".join(parts).encode() + body


class Connection(asyncio.Protocol):
    """One connection; at most one request in flight (no pipelining)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._active = False  # a request is outstanding
        self._response: Response | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._settle: Callable[[Connection], None] | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no subclasses of asyncio's: no isinstance check here.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        response = self._response
        if not self._active or response is None or response.complete:
            # Bytes nobody asked for (or past the end of the response): the stream is
            # no longer in step with our requests, so it may never carry another.
            self._break(MalformedResponse("the upstream sent bytes outside a response"))
            return
        assert self._parser is not None
        body_before = response.body_bytes
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._break(MalformedResponse(f"malformed upstream response: {type(exc).__name__}"))
            return
        # Bytes that are no body (the head; then chunk framing, extensions, trailers,
        # which httptools may join in memory) count against MAX_HEAD_BYTES until the
        # next body bytes: an upstream cannot grow the gateway's memory with them.
        body = response.body_bytes - body_before
        response.head_bytes = (0 if body else response.head_bytes) + len(data) - body
        if response.head_bytes > MAX_HEAD_BYTES:
            self._break(MalformedResponse("the upstream sent too much that is no body"))
            return
        if response.buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        if self._settle is not None and (response.complete or response.skipped > LINGER_BYTES):
            self._settled()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if response is not None and not response.complete and response.error is None:
            if exc is None and response.head_done and response.until_close:
                response.complete = True  # a body delimited by the connection's close
            else:
                response.error = ConnectionCut("the upstream closed the connection mid-response")
        self._settled()
        self._wake()

    # The client's side --------------------------------------------------------------------------

    def start(self, request: bytes, read_timeout_s: float) -> Response:
        """Write one request; its response is read through what this returns."""
        assert not self._active and self.transport is not None
        response = Response(self, read_timeout_s)
        self._response = response
        self._parser = httptools.HttpResponseParser(response)
        self._active = True
        self.transport.write(request)
        return response

    @property
    def reusable(self) -> bool:
        """The response ended cleanly, was read to the end, and the connection stays open."""
        response = self._response
        return (
            response is not None
            and response.complete
            and response.error is None
            and not response.chunks
            and not self.closed
            and response.keep_alive
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def finish(self) -> None:
        """The request is over and the connection goes back idle (only if `reusable`)."""
        self._active = False
        self._response = None
        self._parser = None
        self.idle_since = time.monotonic()
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def linger(self, settle: Callable[[Connection], None], timeout_s: float) -> bool:
        """Read the rest of a response its caller is done with, without keeping it.

        An SSE stream's caller stops at `[DONE]`, often before the body's last
        chunk arrived: reading it (up to `LINGER_BYTES`, for `timeout_s`) lets
        the connection be reused instead of closed.  `settle(self)` follows
        once the response ended or the wait gave up (the connection then
        closed); False when there is nothing to wait for: the response ended,
        failed, or only the connection's close can end it.
        """
        response = self._response
        if response is None or self.closed or response.error is not None:
            return False
        response.chunks.clear()
        response.buffered = 0
        if response.complete or response.until_close or not response.head_done:
            return False
        response.skip = True
        self.drained()
        self._settle = settle
        self._linger_timer = self.loop.call_later(timeout_s, self._give_up)
        return True

    def _give_up(self) -> None:
        self.close()
        self._settled()

    def _settled(self) -> None:
        settle, self._settle = self._settle, None
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        if settle is not None:
            settle(self)

    def close(self) -> None:
        self.closed = True
        self._active = False
        if self.transport is not None:
            self.transport.close()

    def usable(self, now: float, keepalive_s: float) -> bool:
        """An idle connection may carry another request (not closed, not expired)."""
        transport = self.transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < keepalive_s
        )

    # Waiting ------------------------------------------------------------------------------------

    async def wait(self, timeout_s: float) -> None:
        """Until more of the response arrived or it ended; `TimeoutError` past `timeout_s`."""
        waiter = self.loop.create_future()
        self._waiter = waiter
        timer = self.loop.call_later(timeout_s, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def drained(self) -> None:
        """The caller took the buffered body: read the socket again if it was paused."""
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _break(self, error: Exception) -> None:
        response = self._response
        if response is not None and response.error is None and not response.complete:
            response.error = error
        self.close()
        self._wake()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """One response as it arrives: `httptools` calls the `on_*` methods while parsing."""

    def __init__(self, connection: Connection, read_timeout_s: float) -> None:
        self._connection = connection
        self._read_timeout_s = read_timeout_s
        self.status = 0
        self.headers: dict[str, str] = {}
        self.content_length: int | None = None
        self.head_done = False
        self.head_bytes = 0  # bytes that are no body since the last body bytes
        self.body_bytes = 0
        self.until_close = False  # the body ends when the connection does
        self.complete = False
        self.keep_alive = False  # both sides keep the connection (known once complete)
        self.error: Exception | None = None
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.skip = False  # the caller is done: the rest is read, not kept (`linger`)
        self.skipped = 0

    @property
    def content(self) -> Response:
        return self

    # httptools' callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second response to one request: the connection is out of step (closed).
            raise MalformedResponse("bytes after the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return  # a trailer: nothing the client reads, never a header of the response
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        # A repeated header keeps its first value, but two lengths must agree (llhttp checks).
        self.headers.setdefault(key, text)

    def on_headers_complete(self) -> None:
        assert self._connection._parser is not None
        status = self._connection._parser.get_status_code()
        if status < 200:
            # No Expect was sent and no upgrade asked for: an interim answer is no answer.
            raise MalformedResponse("an informational response")
        self.status = status
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        if not chunked and length is not None:
            if not length.isdigit():
                raise MalformedResponse("an invalid Content-Length")
            self.content_length = int(length)
        self.until_close = not chunked and self.content_length is None and status not in (204, 304)
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.skip:
            self.skipped += len(body)
            return
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        # Asked here: once the message is over, llhttp no longer knows.
        assert self._connection._parser is not None
        self.keep_alive = self._connection._parser.should_keep_alive()
        self.complete = True

    # The reader's side --------------------------------------------------------------------------

    def _wait(self, deadline: float) -> Awaitable[None]:
        """Wait for more bytes, but not past `deadline`: bytes that are no progress
        (a head a byte at a time, a chunk extension without end) do not extend it."""
        left = deadline - self._connection.loop.time()
        if left <= 0:
            raise TimeoutError
        return self._connection.wait(left)

    async def wait_head(self) -> None:
        """The whole head within one read timeout, however it is dribbled."""
        deadline = self._connection.loop.time() + self._read_timeout_s
        while not self.head_done:
            if self.error is not None:
                raise self.error
            if self._connection.closed:
                raise ConnectionCut("the upstream closed the connection before answering")
            await self._wait(deadline)

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body in the pieces that arrived together; a read timeout without body bytes
        ends it (whatever else the upstream sends meanwhile)."""
        loop = self._connection.loop
        deadline = loop.time() + self._read_timeout_s
        while True:
            if self.chunks:
                data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
                self.chunks.clear()
                self.buffered = 0
                self._connection.drained()
                yield data
                deadline = loop.time() + self._read_timeout_s
            elif self.complete:
                return
            elif self.error is not None:
                raise self.error
            elif self._connection.closed:
                raise ConnectionCut("the upstream closed the connection mid-response")
            else:
                await self._wait(deadline)

    async def read(self) -> bytes:
        """The whole body (the caller checked its declared length against its bound)."""
        parts: list[bytes] = []
        loop = self._connection.loop
        deadline = loop.time() + self._read_timeout_s
        while True:
            if self.chunks:
                parts += self.chunks
                self.chunks.clear()
                self.buffered = 0
                self._connection.drained()
                deadline = loop.time() + self._read_timeout_s
            if self.complete:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            if self.error is not None:
                raise self.error
            if self._connection.closed:
                raise ConnectionCut("the upstream closed the connection mid-response")
            await self._wait(deadline)
