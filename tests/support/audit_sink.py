"""An `AuditSink` for layer tests whose events become durable only when the test says so."""

from __future__ import annotations

import asyncio

from bulkhead.audit import AuditEvent, WriterState
from bulkhead.errors import AuditUnavailable


class SlowSink:
    """A sink whose events become durable only when the test says so (or never)."""

    def __init__(self, fails: bool = False) -> None:
        self.events: list[AuditEvent] = []
        self.durable_up_to = 0
        self.fails = fails
        self.changed = asyncio.Event()

    def emit(self, event: AuditEvent) -> int:
        self.events.append(event)
        return len(self.events)

    async def durable(self, ticket: int) -> None:
        while self.durable_up_to < ticket:
            if self.fails:
                raise AuditUnavailable("the record could not be made durable")
            self.changed.clear()
            await self.changed.wait()

    def commit(self) -> None:
        self.durable_up_to = len(self.events)
        self.changed.set()

    def flush(self, timeout: float = 5.0) -> None:
        return None

    def state(self) -> WriterState:
        return WriterState(healthy=True, backlog=0)

    def close(self) -> None:
        return None
