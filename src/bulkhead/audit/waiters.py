"""Waiting for durability: asyncio futures keyed by a log position, settled by the writer thread.

`AuditLog.emit` hands out a ticket (the event's position in the order events
are committed); `AuditLog.durable(ticket)` waits until the acknowledged count
reaches it.  The waiters sit in a heap by ticket, so each commit pops exactly
those it made durable, and a commit settles all of one event loop's waiters
with one `call_soon_threadsafe` (one wake-up of that loop, however many
requests were waiting).  Nothing here blocks an event loop: the writer thread
only schedules callbacks.

The two hand-offs of a wait are kept as light as they can be: the writer
sleeps on a bare lock (`Bell`: one release wakes it, no condition's waiter
list, no lock made per sleep), and the bound on each wait (`wait_s`) is kept
by one timer per event loop (`Bounds`), not a timer armed and cancelled per
wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
from collections import deque
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


class Bell:
    """The writer's sleep, and the one wake-up others give it; both under the log's `lock`.

    A bare lock held while nobody rings: the writer sleeps by acquiring it
    (with the log's lock released meanwhile), a ringer releases it once.  A
    ring between the writer's release of the log's lock and its acquire is not
    lost (the acquire returns at once), and one that comes after a sleep timed
    out is taken back before the writer goes on, so the bell is held again
    whenever the writer is awake.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._bell = threading.Lock()
        self._bell.acquire()
        self.asleep = False

    def ring_locked(self) -> bool:
        """Wake the writer if it sleeps (with the log's lock held); whether it did."""
        if not self.asleep:
            return False
        self.asleep = False
        self._bell.release()
        return True

    def sleep_locked(self, timeout: float | None = None) -> None:
        """Sleep until rung or `timeout` ends, the log's lock released meanwhile (held again
        on return)."""
        self.asleep = True
        self._lock.release()
        try:
            self._bell.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))
        finally:
            self._lock.acquire()
        if self.asleep:  # nobody rang: the time ran out
            self.asleep = False
        else:  # rung; a ring that came after the time ran out is taken back now
            self._bell.acquire(blocking=False)


class Bounds:
    """The `wait_s` bound on every wait: one timer per event loop, not one per wait.

    Every wait has the same bound, so the waits of one loop end their bounds
    in the order they began: a queue by deadline.  One timer, armed for the
    oldest, fails those whose bound has passed (`expire`: a 503) and is armed
    again for the next; waits settled meanwhile are dropped as the queue's
    head reaches them.  A loop's queue is forgotten once empty, and with it
    its timer, so an idle gateway arms none.  Each queue is touched on its own
    loop's thread only.
    """

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._why = f"no commit within {wait_s} s"
        self._queues: dict[asyncio.AbstractEventLoop, deque[tuple[float, Waiter]]] = {}

    def watch(self, loop: asyncio.AbstractEventLoop, waiter: Waiter) -> None:
        """Fail `waiter` if it is still pending `wait_s` from now (on `loop`, its loop)."""
        deadline = loop.time() + self.wait_s
        queue = self._queues.get(loop)
        if queue is None:
            self._forget_closed()
            queue = self._queues[loop] = deque()
            loop.call_at(deadline, self._sweep, loop, queue)
        else:
            while queue and queue[0][1].done():
                queue.popleft()
        queue.append((deadline, waiter))

    def _sweep(self, loop: asyncio.AbstractEventLoop, queue: deque[tuple[float, Waiter]]) -> None:
        now = loop.time()
        while queue and (queue[0][0] <= now or queue[0][1].done()):
            expire(queue.popleft()[1], self._why)
        if queue:
            loop.call_at(queue[0][0], self._sweep, loop, queue)
        elif self._queues.get(loop) is queue:
            del self._queues[loop]

    def _forget_closed(self) -> None:
        # A loop closed with its timer armed never sweeps again: its queue goes here.
        for loop in list(self._queues):  # a copy: other loops' threads add theirs meanwhile
            if loop.is_closed():
                self._queues.pop(loop, None)
