"""The audit writer's bookkeeping of failures: what `WriterState` reports, and the entry an
outage leaves in the log once it is over."""

from __future__ import annotations

from typing import Protocol

from bulkhead.audit import WriterState
from bulkhead.audit.events import AuditEvent

RECOVERED = "system:audit.writer_recovered"


class Limits(Protocol):
    """The writer's thresholds (`AuditLog`)."""

    fail_after_s: float
    stall_after_s: float
    max_backlog: int


class Health:
    """The writer's bookkeeping of failures; every method runs under the log's lock."""

    def __init__(self) -> None:
        self.failing_since: float | None = None  # the first failed try of this outage
        self.error: str | None = None  # its exception type
        self.waiting_since: float | None = None  # the oldest uncommitted event, about
        self.last_commit: float | None = None
        self.dropped = 0
        self.unrecorded_drops = 0
        self.reported = True

    def drop(self, count: int) -> bool:
        """Count dropped events; True for the first of a run (worth a critical log line)."""
        self.dropped += count
        self.unrecorded_drops += count
        return self.unrecorded_drops == count

    def failed(self, error: str, now: float) -> None:
        if self.failing_since is None:
            self.failing_since = now
        self.error = error

    def committed(self, now: float, pending: bool) -> tuple[float | None, int]:
        """Note a commit; return (start of the outage it ended, if any; drops to record)."""
        outage = self.failing_since if not self.reported else None
        self.failing_since, self.error, self.last_commit = None, None, now
        self.waiting_since = now if pending else None
        dropped, self.unrecorded_drops = self.unrecorded_drops, 0
        return outage, dropped

    def state(self, now: float, backlog: int, alive: bool, limits: Limits) -> WriterState:
        problem, since = self._problem(now, backlog, alive, limits)
        return WriterState(
            healthy=problem is None,
            backlog=backlog,
            failing_since=since,
            last_commit=self.last_commit,
            problem=problem,
            dropped=self.dropped,
        )

    def _problem(
        self, now: float, backlog: int, alive: bool, limits: Limits
    ) -> tuple[str | None, float | None]:
        if not alive:
            return "the writer thread stopped", self.waiting_since or now
        failing = self.failing_since
        if failing is not None and now - failing >= limits.fail_after_s:
            return f"writes fail ({self.error})", failing
        waiting = self.waiting_since
        if backlog and waiting is not None and now - waiting >= limits.stall_after_s:
            return f"no commit for {now - waiting:.0f} s", waiting
        if backlog >= limits.max_backlog:
            return f"backlog of {backlog} events", waiting
        return None, None

    def observe(self, healthy: bool) -> bool:
        """Remember the state last seen; True when it changed."""
        changed, self.reported = healthy != self.reported, healthy
        return changed


def outage_event(since: float | None, now: float, dropped: int) -> AuditEvent:
    parts = []
    if since is not None:
        parts.append(f"events could not be written for {now - since:.1f} s")
    if dropped:
        parts.append(f"{dropped} event(s) dropped because the backlog was full")
    return AuditEvent(
        action=RECOVERED, outcome="success", status=200, reason="; ".join(parts) + "; recovered"
    )
