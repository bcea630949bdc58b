"""The append path of the audit Merkle log: enqueue without waiting, commit in groups.

`emit` puts an event on an in-memory queue and returns at once with a
ticket, the event's position; `durable(ticket)` is awaited until that event
has committed (`audit.waiters`).  The gateway answers a call only once its
event is durable, and forwards a model call only once an entry saying so is.
A writer thread takes everything queued and appends it in one transaction
(`audit.append`: each event canonicalised with RFC 8785 and hashed as an
RFC 6962 leaf, on one connection the thread keeps); an event is
*acknowledged* once that transaction has committed.  The group
commit is natural: an idle writer commits the first event at once, and
whatever arrives during a commit (up to `max_batch`) shares the next one, so
a lone call waits for one commit and a busy gateway pays one per batch.

The writer is woken once per commit, not once per event: the queue and the
writer's sleep share the log's lock (a plain lock; the writer sleeps on a
`Bell`, a bare lock one release wakes), a waiter wakes it only if it sleeps,
and then at its event loop's next turn (`_call_locked`), so that every call
reaching its wait in one turn shares the commit; an event nobody waits for,
emitted on an event loop while the writer sleeps, does not wake it at all:
that loop arms a timer for the end of its linger instead, so at c=1 a
call's closing entry rides with the next call's forwarding entry in one
commit, at the cost of one wake-up.  The bound on a wait (`wait_s`) is one
timer per event loop (`waiters.Bounds`), not one per wait.

Leaf indices are assigned inside the transaction under a database-wide lock,
so any number of gateway processes on one database act as a single
sequencer: indices have no gaps and no duplicates.

The log never dies silently.  Each event is encoded on its own: one that
cannot be is replaced by a substitute entry saying so, never dropped.  The
writer thread catches every failure, retries the batch with back-off, and
reports its state (`WriterState`): once events have failed to commit for
`fail_after_s`, or the backlog stalls or overflows, the state turns unhealthy,
the gateway refuses requests, and `on_state` raises the alert.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from bulkhead.audit import WriterState
from bulkhead.audit.append import GENESIS as GENESIS  # re-exported
from bulkhead.audit.append import SEQUENCER_LOCK as SEQUENCER_LOCK  # re-exported
from bulkhead.audit.append import UNENCODABLE as UNENCODABLE  # re-exported
from bulkhead.audit.append import Appender, BatchHook
from bulkhead.audit.append import append_batch as append_batch  # re-exported
from bulkhead.audit.append import encode as encode  # re-exported
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.health import RECOVERED as RECOVERED  # re-exported
from bulkhead.audit.health import Health, outage_event
from bulkhead.audit.waiters import Bell, Bounds, Waiters, settle, unavailable
from bulkhead.store.db import Database

log = logging.getLogger("bulkhead.audit")

DROPPED = -1
"""The ticket of an event dropped because the backlog was full: it never becomes durable."""

StateHook = Callable[[WriterState], None]


class AuditLog:
    """An `AuditSink` that writes the Merkle log's leaves with group commit."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 4096,
        on_commit: Callable[[int], None] | None = None,
        on_state: StateHook | None = None,
        on_batch: BatchHook | None = None,
        fail_after_s: float = 1.0,
        stall_after_s: float = 30.0,
        max_backlog: int = 50_000,
        wait_s: float = 5.0,
        linger_s: float = 0.01,
        now: Callable[[], float] = time.time,
    ):
        self.db = db
        # Events nobody waits for (a forwarded call's closing entry, a background job's)
        # wait up to `linger_s` for company, so a trickle shares one commit; a waiter
        # (`durable`, `flush`) ends the linger at once.
        self.linger_s = linger_s
        self.max_batch = max_batch
        self.on_commit = on_commit
        self.on_state = on_state
        self.fail_after_s, self.stall_after_s = fail_after_s, stall_after_s
        # The longest a call waits for its event to be durable before it is refused (503);
        # a writer failing for `fail_after_s` ends every wait sooner.
        self.wait_s = wait_s
        # Unhealthy (requests refused) at `max_backlog`; events beyond twice that are
        # counted as dropped, and the count is written once the log recovers.
        self.max_backlog = max_backlog
        self._now = now
        # One lock for the counts, the queue and the writer's sleep (`_bell`); `flush`
        # waits on `_flushed`, notified after a commit only while someone flushes.
        self._lock = threading.Lock()
        self._bell = Bell(self._lock)
        self._flushed = threading.Condition(self._lock)
        self._flushers = 0
        self._bounds = Bounds(wait_s)
        self._pending: list[AuditEvent] = []
        self._urgent = False  # someone waits (or a linger ended): commit what is queued now
        self._stop = False
        self._idle = False  # the writer sleeps with no time-out: an emit must see that it wakes
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # whose linger timer is armed
        self._calling: set[asyncio.AbstractEventLoop] = set()  # loops that ring at their next turn
        self._emitted = 0
        self._acknowledged = 0
        self._health = Health()
        self._waiters = Waiters()
        self._closing = False
        # The writer thread's connection, kept across batches (`audit.append`).
        self._appender = Appender(db, on_batch=on_batch)
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    @property
    def acknowledged(self) -> int:
        return self._acknowledged

    def emit(self, event: AuditEvent) -> int:
        """Queue `event`; return its ticket for `durable` (`DROPPED` if the backlog is full)."""
        with self._lock:
            if self._emitted - self._acknowledged >= 2 * self.max_backlog:
                first = self._health.drop(1)
            else:
                ticket = self._enqueue_locked(event)
                if not self._idle:
                    return ticket  # the writer will see it: it commits or lingers
                loop = _running_loop() if self.linger_s else None
                if loop is None:  # no loop to time the linger: the writer does
                    self._idle = False
                    self._bell.ring_locked()
                    return ticket
                if self._timer_loop is loop:
                    return ticket  # this loop's timer ends the linger already
                self._timer_loop = loop
                loop.call_later(self.linger_s, self._linger_over, loop)
                return ticket
        if first:
            log.critical("audit backlog full: events are being dropped (and counted)")
        return DROPPED

    def _linger_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop that emitted while the writer slept: what lingered is committed now."""
        with self._lock:
            if self._timer_loop is loop:
                self._timer_loop = None
            if self._pending:
                self._wake_locked()

    def _wake_locked(self) -> None:
        self._urgent = True
        if self._bell.ring_locked():
            self._idle = False

    def _enqueue_locked(self, event: AuditEvent) -> int:
        if self._emitted == self._acknowledged:
            self._health.waiting_since = self._now()
        self._emitted += 1
        self._pending.append(event)
        return self._emitted

    async def durable(self, ticket: int) -> None:
        """Return once the event of `ticket` has committed; never blocks the event loop.

        Raises `AuditUnavailable` (a 503) for a dropped event, while the writer
        has been failing for `fail_after_s` or has stopped, or after `wait_s`.
        """
        if 0 <= ticket <= self._acknowledged:  # already durable: no lock, no future
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if ticket <= self._acknowledged and ticket != DROPPED:
                return
            problem = self._refusal_locked(ticket)
            if problem is not None:
                raise unavailable(problem)
            self._waiters.add(ticket, waiter)
            self._call_locked(loop)
        self._bounds.watch(loop, waiter)  # after `wait_s`, AuditUnavailable
        await waiter

    def _call_locked(self, loop: asyncio.AbstractEventLoop) -> None:
        """Someone on `loop` waits: have the writer commit once `loop` has run what is ready.

        A writer that is committing takes the wait's event next (`_urgent`).  A
        sleeping one is rung at the loop's next turn, not now: every call that
        reaches its wait in this turn then shares the commit, where a ring now
        would have the writer take the first event alone as soon as the loop
        released the interpreter lock between two callbacks.
        """
        if not self._bell.asleep:
            self._urgent = True
        elif loop not in self._calling:
            # A loop closed before its turn came never rings: forgotten here.
            self._calling = {other for other in self._calling if not other.is_closed()}
            self._calling.add(loop)
            loop.call_soon(self._call, loop)

    def _call(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._calling.discard(loop)
            self._wake_locked()

    def _refusal_locked(self, ticket: int) -> str | None:
        """Why a wait for `ticket` would be in vain now, if it would."""
        if ticket == DROPPED:
            return "the backlog was full"
        return self._failure_locked()

    def _failure_locked(self) -> str | None:
        """Why no event can be expected to commit soon, if none can."""
        if self._closing and not self._thread.is_alive():
            return "the log is closed"
        failing = self._health.failing_since
        if failing is not None and self._now() - failing >= self.fail_after_s:
            return f"writes fail ({self._health.error})"
        return None

    def _take(self) -> tuple[list[AuditEvent], bool]:
        # Group commit: an event someone waits for goes at once, with whatever queued up
        # while the last transaction committed, so a burst shares one fsync; events nobody
        # waits for linger up to `linger_s`, then ride with the next.  One wait per batch.
        deadline: float | None = None
        with self._lock:
            while not (self._stop or (self._pending and (self._urgent or not self.linger_s))):
                if not self._pending:  # (a flush with nothing queued leaves no urgency)
                    deadline, self._urgent, self._idle = None, False, True
                    self._bell.sleep_locked()  # an emit or a waiter rings (`_wake_locked`)
                    continue
                now = time.monotonic()
                deadline = now + self.linger_s if deadline is None else deadline
                if now >= deadline:
                    break
                self._idle = False
                self._bell.sleep_locked(deadline - now)  # nobody waits yet: let company arrive
            self._idle = False
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            # A waiter from now on finds its event in this batch (it was emitted before it
            # waited) or wakes the next; one whose event is still queued keeps it urgent.
            self._urgent = self._urgent and bool(self._pending)
            return batch, self._stop and not self._pending

    def _commit(self, events: list[AuditEvent]) -> None:
        """Commit the batch, retrying with back-off until it is in: it never gives up."""
        delay, fresh_ids = 0.05, False
        while True:
            try:
                self._appender.append(events, fresh_ids=fresh_ids)
            except Exception as exc:
                # Nothing was committed, so the whole batch is tried again.  An
                # IntegrityError is another writer that took the same indices
                # (SQLite), or an event id already in the log: the retry gives
                # such events fresh ids.
                fresh_ids = fresh_ids or isinstance(exc, IntegrityError)
                self._failed(exc)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                self._committed(len(events))
                return

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._health.failed(type(exc).__name__, self._now())
            # Once the failure has lasted `fail_after_s`, nobody waits for it to end.
            doomed = self._waiters.take_all() if self._failure_locked() else []
        if doomed:
            settle(doomed, lambda: unavailable(f"writes fail ({type(exc).__name__})"))
        log.warning("audit append failed (%s); retrying", type(exc).__name__)
        self.state()  # notices (and reports) when the failure has lasted too long

    def _committed(self, count: int) -> None:
        now = self._now()
        with self._lock:
            self._acknowledged += count
            outage, dropped = self._health.committed(now, self._acknowledged < self._emitted)
            if outage is not None or dropped:
                # The log itself records that it could not be written, and what was lost.
                self._enqueue_locked(outage_event(outage, now, dropped))
            durable = self._waiters.ready(self._acknowledged)
            if self._flushers:
                self._flushed.notify_all()
            # After a commit the writer is alive and not failing: only a backlog can make
            # it unhealthy, and only an unhealthy one can recover (`Health.state`).
            look = (
                not self._health.reported or self._emitted - self._acknowledged >= self.max_backlog
            )
        if self.on_commit is not None:
            try:
                self.on_commit(self._acknowledged)
            except Exception as exc:
                log.error("audit on_commit hook failed: %s", type(exc).__name__)
        # The waiters' loops are woken last, as the writer goes back to sleep: a loop
        # woken earlier would wait for the interpreter lock the writer still holds.
        settle(durable)
        if look:
            self.state()

    def _run(self) -> None:
        while True:
            events: list[AuditEvent] = []
            try:
                events, stop = self._take()
                if events:
                    self._commit(events)
                if stop:
                    self._appender.close()
                    return
            except Exception as exc:  # _commit never raises; the thread must not die anyway.
                log.critical("audit writer error (%s)", type(exc).__name__)
                time.sleep(0.5)

    def state(self) -> WriterState:
        """The writer's state now; reports a change between healthy and not (log, `on_state`)."""
        now = self._now()
        with self._lock:
            backlog = self._emitted - self._acknowledged
            alive = self._thread.is_alive() or self._closing
            current = self._health.state(now, backlog, alive, self)
            changed = self._health.observe(current.healthy)
        if changed:
            self._report(current)
        return current

    def _report(self, state: WriterState) -> None:
        if state.healthy:
            log.warning("audit writer recovered: events are written again")
        else:
            log.critical(
                "audit events cannot be written (%s): requests are refused until they can",
                state.problem,
            )
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception as exc:
                log.error("audit state hook failed: %s", type(exc).__name__)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every event emitted so far is acknowledged (durable)."""
        with self._lock:
            self._wake_locked()
            target = self._emitted
            self._flushers += 1
            try:
                self._flushed.wait_for(lambda: self._acknowledged >= target, timeout)
            finally:
                self._flushers -= 1

    def close(self) -> None:
        self._closing = True
        with self._lock:
            self._stop = True
            self._wake_locked()
        self._thread.join(timeout=30)
        with self._lock:  # what is still waiting now never will be written by this process
            left = self._waiters.take_all()
        settle(left, lambda: unavailable("the log is closed"))

    def __repr__(self) -> str:
        return f"AuditLog(db={self.db!r})"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # emitted from a thread with no event loop
        return None
