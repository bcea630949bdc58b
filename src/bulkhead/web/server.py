"""The gateway's HTTP server: a listener of `web.h1server` connections, lifespan and drain.

The default (`BULKHEAD_HTTP_SERVER=bulkhead`; `uvicorn` runs uvicorn instead).
It does only what the gateway uses of uvicorn — HTTP/1.1 on httptools over
uvloop, TLS with the client certificate in the scope, the ASGI lifespan —
with less work per request (`bench/server_ab.py`: 10 to 30 % less CPU than
uvicorn for the server's own part, which is about 5 % of a gateway request;
docs/benchmarks.md, "Issue 21 (session 12)") and with limits uvicorn's
httptools protocol lacks (`web.h1server`).

Its life:

1. the application's lifespan starts up (a failure or a raised error ends
   `run` with `started` still False);
2. the listener opens, and `started` turns True;
3. while any connection is open, once a second, on the second, the `date`
   header is renewed and the connections' deadlines are checked (keep-alive,
   head, body: `H1Connection.check_deadline`); with none open nothing runs:
   the first connection to open renews the date and wakes the tick, so an
   idle server keeps no timer and every answer still reads a plain
   attribute; a request to exit (SIGTERM/SIGINT in the main thread, or
   `should_exit` set from any thread) wakes it at once;
4. the drain, with the loop uvicorn's server runs (`web.drainloop.drain_connections`):
   the listener closes (a new connection is refused, which a load balancer
   retries elsewhere); a call whose answer has not begun, and every call that
   arrives from now on on an open connection, is answered with
   `connection: close`; an idle
   connection is left for its client to close or for the keep-alive timeout
   (closing it could lose a request its client is writing into it);
5. once no connection is left, or the grace period is over (a second signal
   cuts it short), what is left is cut and cancelled, and the lifespan's
   shut-down runs (the gateway commits its audit log there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvloop

from bulkhead.web.drainloop import drain_connections
from bulkhead.web.h1server import H1Connection, ServerState
from bulkhead.web.scope import ASGIApp, Message

_log = logging.getLogger("bulkhead.web")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (`Server.port` tells which once started)
    ssl: ssl.SSLContext | None = None
    keep_alive_s: float = 5.0  # as uvicorn's: the scale-out nginx closes idle ones at 4 s
    head_timeout_s: float = 10.0  # from a request's first byte to the end of its headers
    body_timeout_s: float = 30.0  # between two reads of a body the application waits for
    send_timeout_s: float = 60.0  # an answer's write may wait this long for the client to read
    grace_s: float = 30.0
    backlog: int = 2048
    # Open connections at once; one more is answered 503 and closed, so a flood of sockets
    # costs a bounded amount of memory (each holds a parser and buffers).
    max_connections: int = 10_000


class Server:
    """Serve `app` until asked to exit (see the module)."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self.state = ServerState(app, config)
        self.started = False
        self.port = config.port
        self.servers: list[asyncio.AbstractServer] = []
        self._exit_asked = False
        self._force = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    @property
    def should_exit(self) -> bool:
        return self._exit_asked

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit_asked = value
        loop, woken = self._loop, self._woken
        if value and loop is not None and woken is not None:
            # Thread- and signal-safe: a handler may run in the middle of the loop's own code.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(woken.set)

    def run(self) -> None:
        uvloop.run(self.serve())

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._woken = loop, asyncio.Event()
        lifespan = Lifespan(self.app, self.state.app_state)
        if not await lifespan.startup():
            return
        self.state.renew_date()
        self.state.on_first_connection = self._first_connection
        server = await loop.create_server(
            lambda: H1Connection(self.state),
            self.config.host,
            self.config.port,
            ssl=self.config.ssl,
            backlog=self.config.backlog,
        )
        self.servers = [server]
        self.port = int(server.sockets[0].getsockname()[1])
        with self._signals(loop):
            self.started = True
            try:
                await self._tick()
            finally:
                await self._drain()
                await lifespan.shutdown()

    async def _tick(self) -> None:
        """Renew the date and check the connections' deadlines on every second while any is
        open; else sleep until one opens or exit is asked (`_first_connection`,
        `should_exit`)."""
        woken, loop = self._woken, asyncio.get_running_loop()
        assert woken is not None
        while not self._exit_asked:
            if self.state.connections:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), 1.0 - time.time() % 1.0 + 0.001)
            else:
                await woken.wait()
            woken.clear()
            self.state.renew_date()
            self._check_deadlines(loop.time())

    def _first_connection(self) -> None:
        """The date slept with the tick: renewed before the connection's first answer."""
        self.state.renew_date()
        assert self._woken is not None
        self._woken.set()

    def _check_deadlines(self, now: float) -> None:
        for connection in list(self.state.connections):
            connection.check_deadline(now)

    async def _drain(self) -> None:
        state = self.state
        state.draining = True
        await drain_connections(
            self.servers,
            state.connections,
            self.config.grace_s,
            busy=lambda: bool(state.connections or state.tasks),
            forced=lambda: self._force,
            tick=self._check_deadlines,  # idle ones close at their keep-alive timeout
        )
        for connection in list(state.connections):
            connection.abort()
        for task in list(state.tasks):
            task.cancel()
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=5)

    @contextlib.contextmanager
    def _signals(self, loop: asyncio.AbstractEventLoop) -> Any:
        """SIGTERM and SIGINT ask to exit; a second one cuts the grace period short.
        Only the main thread may set signal handlers (tests run servers in threads)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signalled, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _signalled(self, sig: signal.Signals) -> None:
        if self._exit_asked:
            self._force = True
        _log.info("%s: draining", sig.name)
        self.should_exit = True


class Lifespan:
    """The ASGI lifespan protocol, as uvicorn's `lifespan="on"` runs it."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.failed = False
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> bool:
        self.task = asyncio.get_running_loop().create_task(self._main())
        await self.inbox.put({"type": "lifespan.startup"})
        await self.started.wait()
        return not self.failed

    async def shutdown(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.stopped.wait()
        if self.task is not None:
            await self.task

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self.state
        try:
            await self.app(scope, self.inbox.get, self._send)
        except Exception:
            _log.exception("the application's lifespan failed")
            self.failed = True
        finally:
            self.started.set()
            self.stopped.set()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            _log.error("%s: %s", kind, message.get("message", ""))
            self.failed = True
        if kind.startswith("lifespan.startup."):
            self.started.set()
        elif kind.startswith("lifespan.shutdown."):
            self.stopped.set()
