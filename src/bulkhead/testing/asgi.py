"""Drive an ASGI app or one layer of the chain in process: scripted `receive`, recorded `send`.

In the style of `httpx.ASGITransport`, without a client or a socket:

    layer = RequestIdMiddleware(FakeApp())
    sent = run(layer, http_scope("GET", "/v1/models"))
    assert sent.status == 200 and sent.header(b"x-request-id")

`drive` is the coroutine, `run` the same under `asyncio.run`.  An error the
app raises propagates (that is how a layer refuses), and what it sent before
is kept in the `Sent` passed as `into`.  `FakeApp` is the inner app a layer
wraps: it notes the scope it was called with and the body it read, then
answers what it was told to (or raises it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bulkhead.web.scope import ASGIApp, Message, Receive, Scope, Send

CLIENT = ("203.0.113.7", 50000)


def http_scope(
    method: str = "GET",
    path: str = "/",
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    client: tuple[str, int] | None = CLIENT,
    **facts: Any,
) -> Scope:
    """An HTTP scope as a server makes it; `facts` are scope keys a test presets."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower(), v) for k, v in headers],
        "client": client,
        "server": ("127.0.0.1", 0),
    }
    scope.update(facts)
    return scope


def scripted_receive(body: bytes | Sequence[bytes] = b"", *, disconnect: bool = False) -> Receive:
    """`http.request` messages carrying `body` (one per chunk), then `http.disconnect`.

    With `disconnect`, the client goes before its last chunk.
    """
    chunks = [body] if isinstance(body, bytes) else list(body)
    script: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks or [b""])
    ]
    if disconnect:
        script = script[:-1]
    script.append({"type": "http.disconnect"})

    async def receive() -> Message:
        return script.pop(0) if len(script) > 1 else script[0]

    return receive


@dataclass
class Sent:
    """The messages an app sent, and what they add up to."""

    messages: list[Message] = field(default_factory=list)

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def start(self) -> Message | None:
        return next((m for m in self.messages if m["type"] == "http.response.start"), None)

    @property
    def status(self) -> int:
        return self.start["status"] if self.start is not None else 0

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.start.get("headers", ())) if self.start is not None else []

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.bodies)

    @property
    def bodies(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.body"]

    @property
    def complete(self) -> bool:
        """The response ended: its last body message says no more follows."""
        return bool(self.bodies) and not self.bodies[-1].get("more_body", False)

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[Any]:
        """A server-sent event stream's `data:` payloads: JSON parsed, `[DONE]` as a string."""
        out: list[Any] = []
        for raw in self.body.split(b"\n\n"):
            data = raw.strip().removeprefix(b"data:").strip()
            if data:
                out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
        return out


async def drive(
    app: ASGIApp,
    scope: Scope,
    body: bytes | Sequence[bytes] = b"",
    *,
    receive: Receive | None = None,
    into: Sent | None = None,
) -> Sent:
    """Call `app` once; return what it sent (also in `into`, kept if the app raises)."""
    sent = into if into is not None else Sent()
    await app(scope, receive or scripted_receive(body), sent)
    return sent


def run(
    app: ASGIApp,
    scope: Scope,
    body: bytes | Sequence[bytes] = b"",
    *,
    receive: Receive | None = None,
    into: Sent | None = None,
) -> Sent:
    """`drive` under `asyncio.run`, for plain test functions."""
    return asyncio.run(drive(app, scope, body, receive=receive, into=into))


async def read_all(receive: Receive) -> bytes:
    """The whole request body, as an app reads it."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return b"".join(chunks)


class FakeApp:
    """The inner app: notes what it was called with, then answers (or raises) as told.

    `stream` answers a `text/event-stream` in those body messages instead of
    `body`; `hook` runs on the scope first (to set what a later layer would).
    """

    def __init__(
        self,
        *,
        status: int = 200,
        body: bytes = b'{"ok":true}',
        headers: Sequence[tuple[bytes, bytes]] = ((b"content-type", b"application/json"),),
        stream: Sequence[bytes] | None = None,
        raises: BaseException | None = None,
        hook: Callable[[Scope], None] | None = None,
    ) -> None:
        self.status, self.body, self.headers = status, body, list(headers)
        self.stream = stream
        self.raises = raises
        self.hook = hook
        self.calls = 0
        self.scope: Scope | None = None
        self.seen: dict[str, Any] = {}  # the scope's entries as they were on the call
        self.received = b""

    @property
    def called(self) -> bool:
        return self.calls > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        self.scope, self.seen = scope, dict(scope)
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            self.received = await read_all(receive)
        if self.hook is not None:
            self.hook(scope)
        if self.raises is not None:
            raise self.raises
        if self.stream is not None:
            sse = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": self.status, "headers": sse})
            for i, piece in enumerate(self.stream):
                more = i < len(self.stream) - 1
                await send({"type": "http.response.body", "body": piece, "more_body": more})
            return
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
