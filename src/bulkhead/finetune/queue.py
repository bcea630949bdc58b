"""The fine-tuning queue: fair share among tenants, a concurrency limit per tenant.

Jobs wait in one queue per tenant.  Whenever a slot frees (or a job is
submitted) the scheduler starts jobs while it can: each time from the tenant
with the fewest jobs running among those with jobs waiting and under their
`concurrency` limit, ties to the tenant served longest ago (round-robin).  So a tenant that
queues a hundred jobs delays another tenant's one job by at most one slot
freeing, never by a hundred.
`capacity` bounds the jobs running at once across all tenants.

The scheduler knows nothing of storage or HTTP: a `Sink` loads each job's
input and records what happens (state changes, events, the outcome), and a
`Runner` (`contract`) runs it.  Cancelling a queued job takes it off the
queue; cancelling a running one asks its handle to stop (within 5 s).

That queue is one process's.  The gateway's replicas share theirs in the
database instead (`finetune.lease`, by the same rules across the fleet): a
job claimed there is `launch`ed here, and `on_free` says when a slot frees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bulkhead.finetune.contract import Outcome, RunHandle, Runner, TrainEvent, TrainInput

log = logging.getLogger("bulkhead.finetune")

CANCEL_WAIT_S = 5.0


@dataclass(slots=True)
class Ticket:
    """One job as the scheduler holds it."""

    tenant_id: str
    job_id: str
    handle: RunHandle | None = None
    cancelled: bool = False
    claimed: bool = False  # started already (claimed under a lease): `Sink.started` is skipped
    shutdown: bool = False  # stopped by `close` (the replica shuts down), not by a user's cancel
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Sink(Protocol):
    """Where the scheduler's jobs come from and what they did goes."""

    async def load(self, ticket: Ticket) -> TrainInput:
        """The job's input (decrypted into memory); raises `InvalidRequest` for bad data."""
        ...

    async def started(self, ticket: Ticket) -> bool:
        """Record that the job runs; False if it may not (cancelled meanwhile)."""
        ...

    async def event(self, ticket: Ticket, event: TrainEvent) -> None: ...

    async def finished(self, ticket: Ticket, outcome: Outcome) -> None: ...


class Scheduler:
    def __init__(
        self,
        runner: Runner,
        sink: Sink,
        *,
        concurrency: Callable[[str], int],
        capacity: int = 1,
        on_free: Callable[[], None] | None = None,
    ):
        self.runner, self.sink = runner, sink
        self.on_free = on_free  # told when a running job ends (a slot is free)
        self.concurrency = concurrency  # a tenant's limit (`fine_tuning_concurrency`)
        self.capacity = max(1, capacity)
        self._queues: dict[str, deque[Ticket]] = {}
        self._waiting: list[str] = []  # tenants with jobs waiting, in the order they came
        self._served: dict[str, int] = {}  # tenant -> the turn it was last served at
        self._turn = 0
        self._running: dict[str, Ticket] = {}  # job id -> ticket
        self._per_tenant: dict[str, int] = {}
        self._closed = False

    # --- what the API side calls -------------------------------------------------------------

    def submit(self, tenant_id: str, job_id: str) -> None:
        """Queue a job (its row is `queued` already) and start what can start."""
        if tenant_id not in self._queues:
            self._queues[tenant_id] = deque()
            self._waiting.append(tenant_id)
        self._queues[tenant_id].append(Ticket(tenant_id, job_id))
        self._pump()

    def launch(self, ticket: Ticket) -> None:
        """Run a job chosen elsewhere (claimed under the lease), past the queue and its limits."""
        self._start(ticket)

    @property
    def free(self) -> int:
        """Slots free on this replica (none once closed)."""
        return 0 if self._closed else max(0, self.capacity - len(self._running))

    async def cancel(self, tenant_id: str, job_id: str) -> None:
        """Take the job off the queue, or stop it if it runs (waits at most `CANCEL_WAIT_S`)."""
        queue = self._queues.get(tenant_id)
        if queue is not None:
            for ticket in list(queue):
                if ticket.job_id == job_id:
                    queue.remove(ticket)
                    self._forget_if_empty(tenant_id)
                    return
        running = self._running.get(job_id)
        if running is None or running.tenant_id != tenant_id:
            return
        running.cancelled = True
        if running.handle is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running.handle.cancel(), CANCEL_WAIT_S)

    def running(self, tenant_id: str | None = None) -> list[str]:
        """The ids of running jobs (of one tenant, or all)."""
        return [t.job_id for t in self._running.values() if tenant_id in (None, t.tenant_id)]

    def tickets(self) -> list[Ticket]:
        """The running jobs' tickets."""
        return list(self._running.values())

    def queued(self, tenant_id: str) -> list[str]:
        return [t.job_id for t in self._queues.get(tenant_id, ())]

    async def close(self) -> list[Ticket]:
        """Stop every running job (each ticket marked `shutdown`, so the sink can tell this
        stop from a user's cancel) and start no more; the tickets whose runs did not end
        within `CANCEL_WAIT_S` of the stop."""
        self._closed = True
        tickets = list(self._running.values())
        for ticket in tickets:
            ticket.shutdown = True
        await asyncio.gather(*(self.cancel(t.tenant_id, t.job_id) for t in tickets))
        tasks = [t.task for t in tickets if t.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
        return [t for t in tickets if t.task is None or not t.task.done()]

    # --- the turns -----------------------------------------------------------------------------

    def _forget_if_empty(self, tenant_id: str) -> None:
        if not self._queues.get(tenant_id):
            self._queues.pop(tenant_id, None)
            with contextlib.suppress(ValueError):
                self._waiting.remove(tenant_id)

    def _next(self) -> Ticket | None:
        """The head job of the tenant, among those under their limit, with the fewest jobs
        running, ties to the one served longest ago (or never); None if no tenant may start."""
        chosen: tuple[int, int, str] | None = None
        for tenant_id in self._waiting:
            running = self._per_tenant.get(tenant_id, 0)
            if running >= self.concurrency(tenant_id):
                continue
            rank = (running, self._served.get(tenant_id, -1), tenant_id)
            if chosen is None or rank[:2] < chosen[:2]:
                chosen = rank
        if chosen is None:
            return None
        tenant_id = chosen[2]
        self._turn += 1
        self._served[tenant_id] = self._turn
        ticket = self._queues[tenant_id].popleft()
        self._forget_if_empty(tenant_id)
        return ticket

    def _pump(self) -> None:
        while not self._closed and len(self._running) < self.capacity:
            ticket = self._next()
            if ticket is None:
                return
            self._start(ticket)

    def _start(self, ticket: Ticket) -> None:
        self._running[ticket.job_id] = ticket
        self._per_tenant[ticket.tenant_id] = self._per_tenant.get(ticket.tenant_id, 0) + 1
        ticket.task = asyncio.get_running_loop().create_task(self._run(ticket))

    async def _run(self, ticket: Ticket) -> None:
        try:
            await self._drive(ticket)
        except Exception:  # the sink failed (database, audit): the job is left for recovery
            log.exception("fine-tuning job %s: the scheduler could not record it", ticket.job_id)
        finally:
            self._running.pop(ticket.job_id, None)
            self._per_tenant[ticket.tenant_id] -= 1
            if not self._per_tenant[ticket.tenant_id]:
                del self._per_tenant[ticket.tenant_id]
            self._pump()
            if self.on_free is not None and not self._closed:
                self.on_free()

    async def _drive(self, ticket: Ticket) -> None:
        if not ticket.claimed and not await self.sink.started(ticket):
            return
        try:
            job = await self.sink.load(ticket)
        except Exception as exc:  # bad data found only now: the job fails, the queue goes on
            message = getattr(exc, "message", "the job's input could not be loaded")
            await self.sink.finished(ticket, Outcome.failure("invalid_data", message))
            return
        if ticket.cancelled:  # cancelled while its input was loading
            await self.sink.finished(ticket, Outcome.failure("cancelled", "Cancelled."))
            return
        try:
            ticket.handle = await self.runner.start(ticket.job_id, ticket.tenant_id, job)
            if ticket.cancelled:  # cancelled while starting
                await ticket.handle.cancel()
            async for event in ticket.handle.events():
                await self.sink.event(ticket, event)
            outcome = await ticket.handle.outcome()
        except Exception:
            log.exception("fine-tuning job %s: the runner failed", ticket.job_id)
            if ticket.handle is not None:  # no run goes on unrecorded, past its freed slot
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ticket.handle.cancel(), CANCEL_WAIT_S)
            outcome = Outcome.failure("crashed", "The training run failed.")
        if ticket.cancelled and not outcome.succeeded:
            outcome = Outcome.failure("cancelled", "Cancelled.", outcome.trained_tokens)
        await self.sink.finished(ticket, outcome)
