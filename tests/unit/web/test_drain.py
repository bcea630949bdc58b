"""The server's housekeeping tick: once a second when idle, at once when asked to exit."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn

from bulkhead.web.drain import DrainingServer
from bulkhead.web.scope import Receive, Scope, Send
from tests.support.threaded import start_server, stop_server

# Tick counts and a stop within half a second: wall-clock bounds, run on a quiet core.
pytestmark = pytest.mark.serial


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


class _CountingServer(DrainingServer):
    ticks = 0

    async def on_tick(self, counter: int) -> bool:
        self.ticks += 1
        return await super().on_tick(counter)


def _started() -> tuple[_CountingServer, threading.Thread]:
    config = uvicorn.Config(_app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = _CountingServer(config)
    return server, start_server(server)


def test_an_idle_server_ticks_once_a_second_and_keeps_the_date_fresh() -> None:
    server, thread = _started()
    try:
        first = server.ticks
        time.sleep(2.5)
        # uvicorn's own loop would have ticked 25 times.
        assert 1 <= server.ticks - first <= 4
        date = dict(server.server_state.default_headers)[b"date"].decode()
        assert (
            abs(
                time.mktime(time.strptime(date, "%a, %d %b %Y %H:%M:%S GMT"))
                - time.mktime(time.gmtime())
            )
            <= 2
        )
    finally:
        stop_server(server, thread)


def test_setting_should_exit_from_another_thread_stops_it_at_once() -> None:
    server, thread = _started()
    time.sleep(0.05)
    asked = time.monotonic()
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - asked < 0.5  # not the next whole-second tick
