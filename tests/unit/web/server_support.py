"""A `web.server` in a thread with a small ASGI app, and a raw-socket HTTP reader."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bulkhead.web.scope import Receive, Scope, Send
from bulkhead.web.server import Server, ServerConfig
from tests.support.threaded import start_server, stop_server


@dataclass
class Seen:
    """What the app saw, for the tests to read."""

    disconnects: list[str] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)


def make_app(seen: Seen) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.scopes.append(scope)
        path = scope["path"]
        if path == "/disconnect":
            seen.entered.set()
            message = await receive()
            while message["type"] == "http.request":
                message = await receive()
            seen.disconnects.append(message["type"])
            return
        if path == "/flood":  # 64 MiB to a client that may not read them
            await send({"type": "http.response.start", "status": 200, "headers": []})
            piece = b"x" * 65536
            for _ in range(1024):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            seen.disconnects.append("flooded")
            return
        if path == "/refuse":  # answers without reading the body
            await _answer(send, 413, b"too large")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "/listen":  # streams while it listens for the client going
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"data: 0\n\n", "more_body": True})
            seen.entered.set()
            seen.disconnects.append((await receive())["type"])
            return
        if path == "/slow":
            seen.entered.set()
            await asyncio.get_running_loop().run_in_executor(None, seen.release.wait, 10)
        if path.startswith("/boom"):
            raise ValueError("the app's bug")
        if path == "/split":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb: c")]}
            )
            return
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for n in range(3):
                await send(
                    {"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
            return
        info = {
            "method": scope["method"],
            "path": path,
            "query": scope["query_string"].decode(),
            "body": len(body),
            "tls": scope.get("extensions", {}).get("tls") is not None,
        }
        await _answer(send, 200, json.dumps(info).encode())

    return app


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def running(seen: Seen | None = None, **config: Any) -> Iterator[tuple[Server, Seen]]:
    seen = seen or Seen()
    server = Server(make_app(seen), ServerConfig(**config))
    thread = start_server(server)
    try:
        yield server, seen
    finally:
        seen.release.set()
        while _open:
            _open.pop().close()
        stop_server(server, thread)


_open: list[socket.socket] = []  # the test's connections, closed when its server stops


def connect(server: Server, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    _open.append(sock)
    return sock


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: bytes


class Reader:
    """Reads HTTP/1.1 responses off a socket, as a strict client would."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise EOFError(self.buf)
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(self.buf)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def reply(self, head_only: bool = False) -> Reply:
        raw = self._until(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.decode().partition(":")
            assert name.lower() not in headers, f"{name} twice"
            headers[name.lower()] = value.strip()
        if head_only or status in (100, 204, 304):
            return Reply(status, headers, b"", raw)
        if "content-length" in headers:
            return Reply(status, headers, self._exactly(int(headers["content-length"])), raw)
        assert headers.get("transfer-encoding") == "chunked", headers
        body = b""
        while True:
            size = int(self._until(b"\r\n"), 16)
            chunk = self._exactly(size + 2)
            assert chunk.endswith(b"\r\n")
            if size == 0:
                return Reply(status, headers, body, raw)
            body += chunk[:-2]

    def closed(self) -> bool:
        """True once the server has closed the connection (and sent nothing more)."""
        try:
            return not self._fill() and not self.buf
        except ConnectionResetError:
            return True
