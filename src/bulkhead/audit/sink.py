"""Audit sinks.  `emit` never waits on disk: a writer thread commits in batches."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Protocol

import orjson

from bulkhead.audit.events import AuditEvent


class AuditSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...

    def flush(self, timeout: float = 5.0) -> None: ...

    def close(self) -> None: ...


_STOP = object()


class JsonlSink:
    """Appends events as JSON lines; one write and fsync per batch (group commit)."""

    def __init__(self, path: Path, *, max_batch: int = 1024):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def emit(self, event: AuditEvent) -> None:
        self._idle.clear()
        self._queue.put(event)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [e for e in batch if isinstance(e, AuditEvent)]
            if events:
                data = b"".join(orjson.dumps(e.as_dict()) + b"\n" for e in events)
                os.write(self._fd, data)
                os.fsync(self._fd)
            if self._queue.empty():
                self._idle.set()
            if any(e is _STOP for e in batch):
                return

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every event emitted so far is durable."""
        self._idle.wait(timeout)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=5)
        os.close(self._fd)

    def __repr__(self) -> str:
        return f"JsonlSink(path={str(self.path)!r})"
