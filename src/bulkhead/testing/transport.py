"""Answer `UpstreamClient` calls in process, in the style of `httpx.MockTransport`.

`MockTransport(handler)` is the client's `transport`: the handler gets each
`UpstreamRequest` and returns a `Reply` (or raises, as a connection failure
would: `aiohttp.ClientConnectionError`).  A reply is a status, headers and
the body in chunks, each chunk after an optional delay; a delay longer than
the call's read timeout raises the error aiohttp raises then, so the
client's own timeout handling is what a test sees.  `cut` ends the body with
the error a connection dropped mid-answer gives.

    transport = MockTransport(lambda request: json_reply({"choices": []}))
    client = UpstreamClient(transport=transport)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bulkhead.runtime.upstream import UpstreamRequest, UpstreamResponse

_READ_TIMEOUT = "Timeout on reading data from socket"


@dataclass(frozen=True, slots=True)
class Chunk:
    data: bytes
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What the fake upstream answers: its head after `delay_s`, then `chunks` in order."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: tuple[Chunk, ...] = ()
    delay_s: float = 0.0
    # Declare the body's length (as a plain response would); False: chunked, no length.
    sized: bool = True
    # The connection drops after the last chunk (aiohttp's ClientPayloadError).
    cut: bool = False


def json_reply(data: Any, status: int = 200, **headers: str) -> Reply:
    return raw_reply(orjson.dumps(data), status, content_type="application/json", **headers)


def raw_reply(
    body: bytes, status: int = 200, *, content_type: str = "text/plain", **headers: str
) -> Reply:
    head = {"content-type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return Reply(status=status, headers=head, chunks=(Chunk(body),))


def sse_reply(
    events: Iterable[Any | bytes], *, done: bool = True, cut: bool = False, delay_s: float = 0.0
) -> Reply:
    """A stream of `data:` events (dicts as JSON, bytes as they are), one chunk each."""
    chunks = [
        Chunk(b"data: " + (e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n\n", delay_s)
        for e in events
    ]
    if done:
        chunks.append(Chunk(b"data: [DONE]\n\n", delay_s))
    head = {"content-type": "text/event-stream"}
    return Reply(headers=head, chunks=tuple(chunks), sized=False, cut=cut)


class _Body:
    def __init__(self, reply: Reply, read_timeout_s: float) -> None:
        self.reply = reply
        self.read_timeout_s = read_timeout_s
        self.consumed = False

    async def iter_any(self) -> AsyncIterator[bytes]:
        self.consumed = True
        for chunk in self.reply.chunks:
            await _wait(chunk.delay_s, self.read_timeout_s)
            yield chunk.data
        if self.reply.cut:
            raise aiohttp.ClientPayloadError("Response payload is not completed")


class _Response:
    def __init__(self, reply: Reply, read_timeout_s: float) -> None:
        self.status = reply.status
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in reply.headers.items()}
        size = sum(len(c.data) for c in reply.chunks)
        self.content_length = size if reply.sized and not reply.cut else None
        self.content = _Body(reply, read_timeout_s)

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.content.iter_any()])


async def _wait(delay_s: float, timeout_s: float) -> None:
    if delay_s > timeout_s:
        await asyncio.sleep(timeout_s)
        raise aiohttp.SocketTimeoutError(_READ_TIMEOUT)
    if delay_s:
        await asyncio.sleep(delay_s)


Handler = Callable[[UpstreamRequest], Reply]


class MockTransport:
    """A `Transport` that answers each request with `handler(request)`; keeps the requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[UpstreamRequest] = []
        self.open = 0  # responses not yet closed: a relay must close each one it opens

    @asynccontextmanager
    async def __call__(self, request: UpstreamRequest) -> AsyncIterator[UpstreamResponse]:
        self.requests.append(request)
        reply = self.handler(request)
        await _wait(reply.delay_s, request.read_timeout_s)
        self.open += 1
        try:
            yield _Response(reply, request.read_timeout_s)
        finally:
            self.open -= 1

    @property
    def last_json(self) -> Any:
        """The body of the last request, parsed."""
        return orjson.loads(self.requests[-1].body)
