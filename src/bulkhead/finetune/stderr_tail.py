"""A training process's stderr: read from a pipe, kept only as a short, scrubbed tail.

The process (`child`) points its stderr at /dev/null before it reads any example, so what
should arrive here is what the sandbox logged while confining it (why it refused to start,
say).  Nothing else is trusted to be free of tenant data, so nothing else is kept: the
runner reads the stderr from a pipe (not the gateway's own stderr, which a log collector
writes to disk), holds in memory only its last `MAX_TAIL_BYTES`, and logs, once per job,
only the tail's lines in the sandbox's own log format (`bulkhead.sandbox`'s logger, see
`_SANDBOX_LINE`), as printable ASCII; any other line is counted, never shown.  None of it
reaches a job's error, events or audit record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Final

log = logging.getLogger("bulkhead.finetune")

MAX_TAIL_BYTES: Final = 2048
MAX_TAIL_LINES: Final = 8
MAX_LINE_CHARS: Final = 200
_CHUNK: Final = 1 << 14
# Bytes that are not printable ASCII, and escape sequences whole (so no stray "[31m").
_UNPRINTABLE: Final = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|[^\x20-\x7e\n]")


# `runtime.sandbox._enter`'s logging format: "%(asctime)s %(levelname)s %(name)s: %(message)s".
_SANDBOX_LINE: Final = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?:INFO|WARNING|ERROR|CRITICAL) "
    r"bulkhead\.(?:sandbox|workers): "
)


def scrub(data: bytes) -> list[str]:
    """The tail's lines worth logging (see the module's docstring), the others counted."""
    text = _UNPRINTABLE.sub(b"?", data).decode("ascii")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept = [line[:MAX_LINE_CHARS] for line in lines if _SANDBOX_LINE.match(line)]
    withheld = len(lines) - len(kept)
    shown = kept[-MAX_TAIL_LINES:]
    return [*shown, f"({withheld} other lines withheld)"] if withheld else shown


class StderrTail:
    """Drains a process's stderr pipe for as long as it is open, keeping its tail."""

    def __init__(self, job_id: str, stream: asyncio.StreamReader | None) -> None:
        self.job_id = job_id
        self.total = 0
        self._tail = b""
        self._task = (
            asyncio.get_running_loop().create_task(self._drain(stream))
            if stream is not None
            else None
        )

    @property
    def tail(self) -> bytes:
        return self._tail

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):  # a broken pipe ends the tail, nothing more
            while data := await stream.read(_CHUNK):
                self.total += len(data)
                self._tail = (self._tail + data)[-MAX_TAIL_BYTES:]

    async def close(self, wait_s: float = 1.0) -> None:
        """Stop reading (after at most `wait_s` for the pipe to end) and log the tail once."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), wait_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            lines = scrub(self._tail)
            if lines:
                log.warning(
                    "fine-tuning job %s: its process wrote %d bytes to stderr, ending: %s",
                    self.job_id,
                    self.total,
                    " | ".join(lines),
                )
