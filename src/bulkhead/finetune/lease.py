"""One replica's share of the fleet's fine-tuning queue: claim, heartbeat, reap, stop.

Every `poll_s` (and at once when a job is created here or a slot frees) the
replica, through `store.finetune_lease`:

1. renews the leases of the jobs it runs and stops the run of any job that is
   no longer running under its lease — cancelled through another replica
   (so a cancel anywhere stops the run within `poll_s` plus the runner's 5 s),
   or reaped because this replica stalled longer than the TTL — and of any
   job whose tenant may no longer run one (suspended, deleted, concurrency 0:
   it ends `cancelled`);
2. fails the running jobs whose lease ended (their replica stopped);
3. claims queued jobs for its free slots, fairly across tenants and within
   each tenant's concurrency across the fleet, and launches them.

A database error skips a round (logged); the leases outlive a few of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bulkhead.finetune.queue import Scheduler, Ticket
from bulkhead.store.finetune import JobInfo
from bulkhead.store.finetune_lease import JobLeases

log = logging.getLogger("bulkhead.finetune")


class LeaseLoop:
    def __init__(
        self,
        leases: JobLeases,
        scheduler: Scheduler,
        *,
        concurrency: Callable[[str], int],
        poll_s: float,
        on_change: Callable[[JobInfo, str, str | None], None],
    ):
        self.leases, self.scheduler = leases, scheduler
        self.concurrency, self.poll_s = concurrency, poll_s
        self.on_change = on_change  # (job, status, reason): the audit of a state change
        self.loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def start(self) -> None:
        if self._task is None:
            self.loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = self.loop.create_task(self._run())

    def wake(self) -> None:
        """Run a round now (call on the event loop)."""
        if self._wake is not None:
            self._wake.set()

    async def stop(self) -> None:
        """No more rounds: no heartbeat, no claim (at shutdown; a test's dead replica)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await self.round()
            except Exception as exc:  # the database is away: the leases outlive a few rounds
                log.warning("fine-tuning lease round failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def round(self) -> None:
        """Heartbeat, reap, claim: one round."""
        mine = {t.job_id: t.tenant_id for t in self.scheduler.tickets()}
        if mine:
            live = await asyncio.to_thread(self.leases.renew, list(mine))
            # A tenant suspended, deleted or given no concurrency stops its runs too.
            lost = [(t, j) for j, t in mine.items() if j not in live or not self.concurrency(t)]
            if lost:  # cancelled elsewhere, reaped, or not allowed: stop the runs, all at once
                await asyncio.gather(*(self.scheduler.cancel(t, j) for t, j in lost))
        for job in await asyncio.to_thread(self.leases.reap):
            log.warning("fine-tuning job %s: its replica stopped; failed", job.id)
            self.on_change(job, "failed", "crashed")
        free = self.scheduler.free
        if free:
            for job in await asyncio.to_thread(self.leases.claim, free, self.concurrency):
                self.on_change(job, "running", None)
                self.scheduler.launch(Ticket(job.tenant_id, job.id, claimed=True))
