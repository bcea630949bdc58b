"""The tamper-evident audit log: events, the Merkle log, checkpoints, proofs, verification.

The verifier side (`hashing`, `tree`, `proofs`, `checkpoint`, `verify`, `jcs`)
imports no storage and runs on an exported bundle alone.
"""

from typing import Protocol

from bulkhead.audit.events import AuditEvent


class AuditSink(Protocol):
    """Where the gateway puts events: `emit` never waits on disk."""

    def emit(self, event: AuditEvent) -> None: ...

    def flush(self, timeout: float = 5.0) -> None: ...

    def close(self) -> None: ...


__all__ = ["AuditEvent", "AuditSink"]
