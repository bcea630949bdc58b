"""Waiting for durability: asyncio futures keyed by a log position, settled by the writer thread.

`AuditLog.emit` hands out a ticket (the event's position in the order events
are committed); `AuditLog.durable(ticket)` waits until the acknowledged count
reaches it.  The waiters sit in a heap by ticket, so each commit pops exactly
those it made durable, and a commit settles all of one event loop's waiters
with one `call_soon_threadsafe` (one wake-up of that loop, however many
requests were waiting).  Nothing here blocks an event loop: the writer thread
only schedules callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable, Iterable

from bulkhead.errors import AuditUnavailable

Waiter = asyncio.Future[None]


class Waiters:
    """The pending waits for durability; every method runs under the log's lock."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Waiter]] = []
        self._order = itertools.count()  # ties on a ticket never compare futures

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, ticket: int, waiter: Waiter) -> None:
        heapq.heappush(self._heap, (ticket, next(self._order), waiter))

    def ready(self, acknowledged: int) -> list[Waiter]:
        """Remove and return the waiters whose events are now durable."""
        done = []
        while self._heap and self._heap[0][0] <= acknowledged:
            done.append(heapq.heappop(self._heap)[2])
        return done

    def take_all(self) -> list[Waiter]:
        """Remove and return every waiter (the writer is failing or has stopped)."""
        done = [entry[2] for entry in self._heap]
        self._heap.clear()
        return done


def settle(waiters: Iterable[Waiter], error: Callable[[], BaseException] | None = None) -> None:
    """Resolve `waiters` on their own loops (from any thread): done, or failed with `error()`."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Waiter]] = {}
    for waiter in waiters:
        by_loop.setdefault(waiter.get_loop(), []).append(waiter)
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve, group, error)


def _resolve(group: list[Waiter], error: Callable[[], BaseException] | None) -> None:
    for waiter in group:
        if waiter.done():  # cancelled (the client went away) or timed out
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error())


def unavailable(why: str) -> AuditUnavailable:
    return AuditUnavailable(
        f"The audit record of this call could not be made durable ({why}), "
        "so it is not answered; retry later."
    )


def expire(waiter: Waiter, why: str) -> None:
    """The bound on one wait: it ends with `AuditUnavailable` (answered 503)."""
    if not waiter.done():
        waiter.set_exception(unavailable(why))
