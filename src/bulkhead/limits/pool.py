"""A small thread pool of its own, with a bounded queue, for heavy work anyone may ask for.

Password hashing (Argon2id: ~0.1 s of CPU and 64 MiB each) is what an
anonymous client can make the gateway do.  On asyncio's default executor it
would queue in front of every control-plane call that uses `to_thread`, so
a few dozen bogus sign-ins held admin calls for seconds.  A `WorkPool` runs
such work on its own `workers` threads, and holds at most `queue` more
waiting; anything beyond that is refused at once with `RateLimited`
(`code`), instead of waiting and piling up memory.

A job counts until its thread is done with it, even when the caller stopped
waiting (a client that hung up): the bound is on the threads' real work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from bulkhead.errors import RateLimited

T = TypeVar("T")


class WorkPool:
    def __init__(self, name: str, *, workers: int, queue: int, code: str = "busy"):
        if workers < 1 or queue < 0:
            raise ValueError("a pool needs at least one worker and a queue of zero or more")
        self.name, self.code = name, code
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        return self._pending

    def _claim(self) -> None:
        with self._lock:
            if self._pending >= self.capacity:
                busy = RateLimited(
                    "Too many requests of this kind are in progress; try again shortly.",
                    retry_after_s=1.0,
                )
                busy.code = self.code
                raise busy
            self._pending += 1

    def _done(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn: Callable[..., T], /, *args: object) -> T:
        """`fn(*args)` on this pool's threads, or `RateLimited` at once when it is full."""
        self._claim()
        try:
            job = self._executor.submit(fn, *args)
        except BaseException:  # A pool shut down: give the claim back.
            with self._lock:
                self._pending -= 1
            raise
        job.add_done_callback(self._done)
        return await asyncio.wrap_future(job)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"WorkPool({self.name!r}, capacity={self.capacity})"
