"""An HTTP server run in a daemon thread: `web.server.Server`, uvicorn's, the gateway's.

Each has `run()`, `started` (True once it listens) and `should_exit` (set from any
thread to stop it): `start_server` waits for `started`, failing at once if the thread
ends first; `serving` also asks it to exit on the way out and waits for that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Runnable(Protocol):
    started: bool
    should_exit: bool

    def run(self) -> None: ...


def start_server(
    server: Runnable, *, what: str = "the server", within_s: float = 20.0
) -> threading.Thread:
    """`server.run()` in a daemon thread, once `server.started`; the thread."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + within_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.01)
    return thread


def stop_server(server: Runnable, thread: threading.Thread, *, within_s: float = 15.0) -> None:
    """Ask `server` to exit and wait for its thread to end."""
    server.should_exit = True
    thread.join(within_s)
    assert not thread.is_alive(), "the server did not stop"


@contextmanager
def serving(server: Runnable, *, stop_s: float = 15.0) -> Iterator[threading.Thread]:
    """`start_server`, then `stop_server` on the way out."""
    thread = start_server(server)
    try:
        yield thread
    finally:
        stop_server(server, thread, within_s=stop_s)
