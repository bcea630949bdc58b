"""The drain's wait, shared by both HTTP servers (`web.server`, `web.drain`).

Its own module so that the default server (`web.server`) drains with the same
loop as uvicorn's (`web.drain`) without importing uvicorn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

POLL_S = 0.05
"""How often the drain looks whether its connections are gone."""


class Drainable(Protocol):
    def drain(self) -> None: ...


async def drain_connections(
    listeners: Sequence[asyncio.AbstractServer],
    connections: Iterable[Drainable],
    grace_s: float,
    *,
    busy: Callable[[], bool],
    forced: Callable[[], bool],
    tick: Callable[[float], None] | None = None,
) -> float:
    """Steps 1 to 3 of the drain (see the module), for either server: close the
    `listeners`, tell each of `connections` to drain, then wait while the server is
    `busy`, for at most `grace_s` and until `forced`, calling `tick` with the loop's
    time at each look.  The caller has marked its state draining (step 2 for calls
    that arrive later) and cuts what is left (step 4).  Returns the grace left."""
    for listener in listeners:
        listener.close()
    for connection in list(connections):
        connection.drain()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while busy() and loop.time() < deadline and not forced():
        await asyncio.sleep(POLL_S)
        if tick is not None:
            tick(loop.time())
    return max(deadline - loop.time(), 0.0)
