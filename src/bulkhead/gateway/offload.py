"""Heavy work on large inputs runs on worker threads, tenants in turn, never on the event loop.

Parsing, tokenising and scanning cost time in proportion to a request's
size; on the event loop, one tenant's 7 MB prompt would hold every other
tenant's requests (and `/healthz`) for seconds.  Layers hand such work to
`Offload.run` with the size of the input it works on:

* up to `inline_bytes` it runs right there: for a typical request a thread
  hop would cost more than the work (the admission fast path stays a plain
  function call);
* above, it waits in its tenant's queue and runs on one of `workers`
  dedicated threads (half the cores), which leaves the default pool
  (database calls) and a core for the event loop alone.  The workers take
  the tenants' queues in turn, so a tenant that floods its queue delays
  another tenant's large request by one job per worker, not by its flood;
* each tenant has at most `per_tenant` jobs queued or running; one more is
  refused at once (429), which bounds the memory a flood holds;
* a job the threads cannot take (the executor shut down as the interpreter
  exits) is answered with a 503 and released at once: counted and lost, it
  would hold its tenant's quota, a worker and the lowered switch interval.

Work handed over must let go of the interpreter lock often (pure-Python
loops, or C calls over bounded pieces): the token counter encodes in
chunks and the guard scans long texts in windows for this reason.  While
any job is queued or running, the interpreter's switch interval is
lowered to `switch_interval_s` (1 ms instead of 5): the event loop then
waits at most that long for the lock at each turn.  It is put back when
the last job is done, so the common path pays nothing for it (more
frequent switching costs CPU wherever threads share the lock, the audit
writer's included); one count for the process, which the token encoder's
build shares (`switching.SWITCH`: a running job keeps the interval low).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from bulkhead.errors import RateLimited
from bulkhead.loopwork import LoopJob, unavailable
from bulkhead.switching import SWITCH
from bulkhead.web.scope import CONTEXT, Scope

INLINE_BYTES = 16 * 1024
SCAN_WEIGHT = 8
"""What a byte of text weighs for the guards' scans, against parsing or counting it: a scan
takes about a millisecond a KiB of text dense with personal data, so the guards pass
`size * SCAN_WEIGHT` and scan on the event loop up to 2 KiB only (about 2 ms at most)."""
# Half the cores: the tokenizer runs without the interpreter lock, so its threads use whole
# cores, and the event loop keeps one to itself on a small machine.
WORKERS = max(1, (os.cpu_count() or 2) // 2)
PER_TENANT = 16
SWITCH_INTERVAL_S = 0.001

P = ParamSpec("P")
T = TypeVar("T")


def job_owner(scope: Scope) -> str:
    """Whose quota of jobs a request's work takes: its tenant's (platform calls share one)."""
    ctx = scope.get(CONTEXT)
    tenant_id = ctx.tenant_id if ctx is not None else None
    return f"tenant:{tenant_id}" if tenant_id else "platform"


class Offload:
    def __init__(
        self,
        *,
        inline_bytes: int = INLINE_BYTES,
        workers: int = WORKERS,
        per_tenant: int = PER_TENANT,
        switch_interval_s: float = SWITCH_INTERVAL_S,
    ):
        self.inline_bytes = inline_bytes
        self.per_tenant = per_tenant
        self.switch_interval_s = switch_interval_s
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}  # owner -> jobs queued or running
        self._queues: dict[str, deque[LoopJob]] = {}
        self._turns: deque[str] = deque()  # owners with queued jobs, next first
        self._running = 0

    def small(self, size: int) -> bool:
        """Whether work on an input of `size` bytes runs inline."""
        return size <= self.inline_bytes

    async def run(
        self, owner: str, size: int, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(*args, **kwargs)`, inline for a small input, else on a worker thread.

        `owner` is whose queue it waits in (`job_owner`).  Raises `RateLimited`
        when that owner already has `per_tenant` jobs queued or running.
        """
        if self.small(size):
            return work(*args, **kwargs)
        job = LoopJob(owner, functools.partial(work, *args, **kwargs), asyncio.get_running_loop())
        self._enqueue(job)
        try:
            result: T = await job.future
        except asyncio.CancelledError:
            job.abandoned = True  # still queued: skipped; already running: it finishes
            raise
        return result

    def _enqueue(self, job: LoopJob) -> None:
        with self._lock:
            held = self._held.get(job.owner, 0)
            if held >= self.per_tenant:
                raise RateLimited(
                    "Too many large requests of this tenant are being processed; retry shortly.",
                    retry_after_s=1.0,
                )
            if not self._held:  # the first job: threads switch sooner while there is work
                SWITCH.lower(self.switch_interval_s)
            self._held[job.owner] = held + 1
            if job.owner not in self._queues:
                self._queues[job.owner] = deque()
                self._turns.append(job.owner)
            self._queues[job.owner].append(job)
            self._dispatch()

    def _dispatch(self) -> None:
        """Hand queued jobs to free workers, one owner at a time in turn (lock held)."""
        while self._running < self._workers and self._turns:
            owner = self._turns.popleft()
            queue = self._queues[owner]
            job = queue.popleft()
            if queue:
                self._turns.append(owner)
            else:
                del self._queues[owner]
            if job.abandoned:
                self._release(owner)
                continue
            self._running += 1
            try:
                self._executor().submit(self._work, job)
            except Exception:  # no thread will run it: uncounted, and its caller answered
                self._running -= 1
                self._release(owner)
                job.refuse(unavailable())

    def _work(self, job: LoopJob) -> None:
        try:
            job.run()
        finally:
            with self._lock:
                if not job.refused:  # a refused job was uncounted when refused
                    self._running -= 1
                    self._release(job.owner)
                self._dispatch()
            del job  # this frame is in the traceback of the job's error, if any: no cycle

    def _release(self, owner: str) -> None:
        """One job of `owner` is over (lock held)."""
        left = self._held[owner] - 1
        if left:
            self._held[owner] = left
            return
        del self._held[owner]
        if not self._held:  # the last one: back to the interpreter's usual interval
            SWITCH.restore()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="bulkhead-heavy")
        return self._pool
