"""A SIGTERM drain that never closes a connection a client may be sending a call down.

This is the uvicorn server's (`BULKHEAD_HTTP_SERVER=uvicorn`); `web.server`, the
default, drains the same way, with the same loop (`drain_connections`).

uvicorn's graceful shutdown closes the listener, then closes every idle
keep-alive connection at once.  A load balancer that keeps connections open
to the gateway (nginx `keepalive`) may be writing its next request into one
of them at that moment: the request is lost, and nginx does not pass a POST
on to another replica once it was sent.  Here the drain goes:

1. the listener closes: a new connection is refused, which a load balancer
   retries on another replica;
2. a call in flight whose answer has not begun, and every call that arrives
   on an open connection from now on, is answered with `connection: close`,
   and its connection closes after the answer (closing one whose headers
   promised keep-alive would be the same race);
3. an idle connection is left for its client to close, or for the usual
   keep-alive timeout (5 s) to close the way it does in normal operation;
4. once no connection is left, or the grace period is over, uvicorn's own
   shutdown runs: it cancels what is still running and then the
   application's shut-down flushes the audit log.

The server's housekeeping tick (the `date` header, whether to exit) runs once
a second, on the second, instead of uvicorn's ten times a second: an idle
gateway then wakes once a second for it.  A request to exit (a signal, or
`should_exit` set from another thread) wakes the tick at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bulkhead.web.drainloop import drain_connections
from bulkhead.web.tls import tls_extension


class TlsHttpToolsProtocol(HttpToolsProtocol):
    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._tls = tls_extension(transport)
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]


class DrainState(ServerState):
    """uvicorn's per-server state, plus whether the server is draining."""

    draining = False


class DrainingHttpProtocol(TlsHttpToolsProtocol):
    """The gateway's HTTP protocol: uvicorn's httptools one, TLS extension, and the drain.
    A chunked body's trailer fields are dropped: uvicorn would append them to the scope's
    header list, which layers read after authentication too (RFC 9110 6.5.1); and a
    Transfer-Encoding other than `chunked` alone is refused before the call starts."""

    _in_body = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_body = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_body:
            return
        if name.lower() == b"transfer-encoding" and value.rstrip(b" \t").lower() != b"chunked":
            # llhttp refuses `xchunked` or `gzip chunked` only after uvicorn has started the
            # call, and would pass `gzip, chunked` undecoded: 400 (`web.h1server.Unframed`).
            raise ValueError("a Transfer-Encoding other than chunked alone")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_body = True
        super().on_headers_complete()
        if self.cycle is not None and _draining(self.server_state):
            self.cycle.keep_alive = False  # answered with `connection: close`

    def drain(self) -> None:
        """The drain began: a call in flight closes its connection once it is answered,
        if its answer has not begun; one whose headers went out without
        `connection: close` leaves the connection open, for the client may send its
        next call down it the moment the answer ends (that call is answered, and closes)."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.response_started:
            cycle.keep_alive = False


def _draining(state: ServerState) -> bool:
    return isinstance(state, DrainState) and state.draining


class DrainingServer(uvicorn.Server):
    """`uvicorn.Server` whose shutdown drains connections first (see the module)."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit_asked = False
        self._tick_loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None
        super().__init__(config)
        self.server_state = DrainState()

    @property
    def should_exit(self) -> bool:
        return self._exit_asked

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit_asked = value
        loop, woken = self._tick_loop, self._woken
        if value and loop is not None and woken is not None:
            # Thread- and signal-safe: a handler may run in the middle of the loop's own code.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(woken.set)

    async def main_loop(self) -> None:
        """uvicorn's tick, once a second on the second (counter 0: the `date` header is
        renewed each time), or at once when asked to exit."""
        self._tick_loop, self._woken = asyncio.get_running_loop(), asyncio.Event()
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), 1.0 - time.time() % 1.0 + 0.001)
            self._woken.clear()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        if isinstance(state, DrainState):
            state.draining = True
        left = await drain_connections(
            self.servers,
            (c for c in state.connections if isinstance(c, DrainingHttpProtocol)),
            float(self.config.timeout_graceful_shutdown or 0),
            busy=lambda: bool(state.connections),
            forced=lambda: self.force_exit,
        )
        # What is left now is cut off by uvicorn, with what remains of the grace period.
        self.config.timeout_graceful_shutdown = max(left, 0.1)  # type: ignore[assignment]
        await super().shutdown(sockets)
