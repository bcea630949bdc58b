"""Ingestion's worker threads, shared fairly between tenants.

Ingestion's heavy steps (read and decrypt a file, split it, seal its segments) run on a
few threads of their own.  Handed to a plain thread pool, they ran in arrival order: a
tenant with several large files kept every thread busy, step after step, while another
tenant's small file waited behind them at each of its steps.  `FairPool` keeps each
tenant's steps in a queue of its own.  A tenant has work while one of its files is being
ingested (`working`); while several have, each runs at most its share of the threads at
once (`workers / tenants`, rounded up: with two threads, one step each), and a free
thread goes to the tenant under its share that runs the fewest steps, the one served
longest ago first (round robin).  A step that started runs to its end, so a tenant that
starts ingesting waits at most for the shortest running step, and its next steps find
the thread the others may not take.  A tenant alone uses every thread.  How many files
of one tenant are ingested at once is bounded apart (`service.INGEST_PER_TENANT`).
A step the threads cannot take (the executor shut down as the interpreter exits) is not
counted as running and its caller gets a 503 (`LoopJob.refuse`): a count left behind would
hold the tenant's later steps, and with them its ingestion turns, for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from bulkhead.loopwork import LoopJob, unavailable

P = ParamSpec("P")
T = TypeVar("T")

# Tenants gone idle are forgotten once this many are remembered (each costs a few bytes).
_REMEMBERED = 4096


class FairPool:
    """`workers` threads; each free one takes the next step of the tenant under its share
    running the fewest, served longest ago."""

    def __init__(self, workers: int, name: str) -> None:
        if workers < 1:
            raise ValueError("a pool needs a thread")
        self._workers, self._name = workers, name
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._queues: dict[str, deque[LoopJob]] = {}  # tenants with steps waiting
        self._running: dict[str, int] = {}
        self._working: dict[str, int] = {}  # tenant -> its files being ingested
        self._served: dict[str, int] = {}  # tenant -> when it last got a thread
        self._clock = itertools.count()

    async def run(
        self, tenant_id: str, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(*args, **kwargs)` on one of the threads, in `tenant_id`'s turn."""
        step = LoopJob(
            tenant_id, functools.partial(work, *args, **kwargs), asyncio.get_running_loop()
        )
        with self._lock:
            self._queues.setdefault(tenant_id, deque()).append(step)
            self._dispatch()
        try:
            result: T = await step.future
        except asyncio.CancelledError:
            step.abandoned = True  # still queued: skipped; already running: it finishes
            raise
        return result

    @contextlib.contextmanager
    def working(self, tenant_id: str) -> Iterator[None]:
        """Held while one of the tenant's files is being ingested: it has work, and the
        others keep to their share of the threads."""
        with self._lock:
            self._working[tenant_id] = self._working.get(tenant_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._working[tenant_id] - 1
                if left:
                    self._working[tenant_id] = left
                else:
                    del self._working[tenant_id]
                self._dispatch()  # a share may have grown

    def _dispatch(self) -> None:
        """Hand waiting steps to free threads, the fairest tenant first (lock held)."""
        while sum(self._running.values()) < self._workers:
            tenants = len(self._working.keys() | self._queues.keys() | self._running.keys())
            share = -(-self._workers // max(1, tenants))  # rounded up: a share for every thread
            under = [t for t in self._queues if self._running.get(t, 0) < share]
            if not under:
                return  # a thread stays free for a tenant with work that waits for it
            tenant_id = min(under, key=self._rank)
            queue = self._queues[tenant_id]
            step = queue.popleft()
            if not queue:
                del self._queues[tenant_id]
            if step.abandoned:
                continue
            self._running[tenant_id] = self._running.get(tenant_id, 0) + 1
            self._served[tenant_id] = next(self._clock)
            try:
                self._pool().submit(self._work, step)
            except Exception:  # no thread will run it: uncounted, and its caller answered
                self._done(tenant_id)
                step.refuse(unavailable())

    def _rank(self, tenant_id: str) -> tuple[int, int]:
        return self._running.get(tenant_id, 0), self._served.get(tenant_id, -1)

    def _work(self, step: LoopJob) -> None:
        try:
            step.run()
        finally:
            with self._lock:
                if not step.refused:  # a refused step was uncounted when refused
                    self._done(step.owner)
                self._dispatch()
            del step

    def _done(self, tenant_id: str) -> None:
        """One step of `tenant_id` is over (lock held)."""
        left = self._running[tenant_id] - 1
        if left:
            self._running[tenant_id] = left
        else:
            del self._running[tenant_id]
        if len(self._served) > _REMEMBERED:
            busy = self._running.keys() | self._queues.keys()
            self._served = {t: at for t, at in self._served.items() if t in busy}

    def _pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        return self._threads
