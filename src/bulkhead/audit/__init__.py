"""The tamper-evident audit log: events, the Merkle log, checkpoints, proofs, verification.

The verifier side (`hashing`, `tree`, `proofs`, `checkpoint`, `verify`, `jcs`)
imports no storage and runs on an exported bundle alone.
"""

from dataclasses import dataclass
from typing import Protocol

from bulkhead.audit.events import AuditEvent


@dataclass(frozen=True, slots=True)
class WriterState:
    """Whether events are being written: health checks, metrics and the gateway read it.

    `healthy` is False while events cannot be written (the store refuses them,
    a commit hangs, the backlog is full, the writer stopped); the gateway then
    refuses requests.  `problem` names why in a few words (exception types
    only, never their text); `failing_since` is when it started.
    """

    healthy: bool
    backlog: int
    failing_since: float | None = None
    last_commit: float | None = None
    problem: str | None = None
    dropped: int = 0


class AuditSink(Protocol):
    """Where the gateway puts events: `emit` never waits on disk; `durable` waits for one.

    `emit` returns the event's ticket; `await durable(ticket)` returns once that
    event has committed, or raises `AuditUnavailable` within a bound.
    """

    def emit(self, event: AuditEvent) -> int: ...

    async def durable(self, ticket: int) -> None: ...

    def flush(self, timeout: float = 5.0) -> None: ...

    def state(self) -> WriterState: ...

    def close(self) -> None: ...


__all__ = ["AuditEvent", "AuditSink", "WriterState"]
