"""Heavy work on large inputs runs on worker threads, a few at a time, never on the event loop.

Parsing, tokenising and scanning cost time in proportion to a request's
size; on the event loop, one tenant's 7 MB prompt would hold every other
tenant's requests (and `/healthz`) for seconds.  Layers hand such work to
`Offload.run` with the size of the input it works on:

* up to `inline_bytes` it runs right there: for a typical request a thread
  hop would cost more than the work (the admission fast path stays a plain
  function call);
* above, it runs on one of `workers` dedicated threads (half the cores), so
  large requests queue for those threads and leave the default pool
  (database calls) and a core for the event loop alone;
* each tenant has at most `per_tenant` such jobs running or waiting; one
  more is refused at once (429), so a single tenant cannot fill the queue
  that other tenants' large requests wait in.

Work handed over must let go of the interpreter lock often (pure-Python
loops, or C calls over bounded pieces): the token counter encodes in
chunks and the guard scans long texts in windows for this reason.  While
any job is running or waiting, the interpreter's switch interval is
lowered to `switch_interval_s` (1 ms instead of 5): the event loop then
waits at most that long for the lock at each turn.  It is put back when
the last job is done, so the common path pays nothing for it (more
frequent switching costs CPU wherever threads share the lock, the audit
writer's included).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from bulkhead.errors import RateLimited
from bulkhead.web.scope import CONTEXT, Scope

INLINE_BYTES = 16 * 1024
# Half the cores: the tokenizer runs without the interpreter lock, so its threads use whole
# cores, and the event loop keeps one to itself on a small machine.
WORKERS = max(1, (os.cpu_count() or 2) // 2)
PER_TENANT = 4
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
        self._jobs: dict[str, int] = {}
        self._saved_interval = sys.getswitchinterval()

    def small(self, size: int) -> bool:
        """Whether work on an input of `size` bytes runs inline."""
        return size <= self.inline_bytes

    async def run(
        self, owner: str, size: int, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(*args, **kwargs)`, inline for a small input, else on a worker thread.

        `owner` is whose quota of jobs it takes (the tenant's id).  Raises
        `RateLimited` when that owner already has `per_tenant` jobs.
        """
        if self.small(size):
            return work(*args, **kwargs)
        self._take(owner)
        try:
            job = self._executor().submit(work, *args, **kwargs)
        except BaseException:
            self._give_back(owner)
            raise
        # The job is the owner's until it has finished (or was cancelled before it began),
        # even if the request stops waiting for it.
        job.add_done_callback(lambda _: self._give_back(owner))
        return await asyncio.wrap_future(job)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="bulkhead-heavy")
        return self._pool

    def _take(self, owner: str) -> None:
        with self._lock:
            held = self._jobs.get(owner, 0)
            if held >= self.per_tenant:
                raise RateLimited(
                    "Too many large requests of this tenant are being processed; retry shortly.",
                    retry_after_s=1.0,
                )
            self._jobs[owner] = held + 1
            if len(self._jobs) == 1 and held == 0:  # the first job: switch threads sooner
                self._saved_interval = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved_interval, self.switch_interval_s))

    def _give_back(self, owner: str) -> None:
        with self._lock:
            left = self._jobs[owner] - 1
            if left:
                self._jobs[owner] = left
            else:
                del self._jobs[owner]
                if not self._jobs:  # the last one is done
                    sys.setswitchinterval(self._saved_interval)
