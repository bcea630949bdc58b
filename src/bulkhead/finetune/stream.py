"""What every runner does with a training process's stdin and stdout: `StreamRun`.

A runner (`runner.SandboxRunner` on this host, `bulkhead.k8s.training.KubeRunner` on a
cluster) only starts the process and stops it; `StreamRun` speaks the child's protocol
(`child`): it writes the header and the frames (examples, then any base weights), reads the
JSON-line events and, after a successful end event, the adapter frames, and decides the
`Outcome` from the stream, the exit and the runner's own knowledge (the memory limit, a
cancel, the wall-clock limit).  A subclass gives `_connect` (its stdin writer and stdout
reader), `_stop`, `_abort`, `_exit_code`, `_finish` and, if it knows one, `_oom`.

Run as ``python -m bulkhead.finetune.stream`` it is the child behind a sealed stdout: the
first stdin line is ``{"seal": "<base64 key>"}`` and everything the child writes to stdout
is sealed with it (`bulkhead.crypto.channel`).  A pod's stdout is copied into the node's
container log by the container runtime, so on Kubernetes the events and the adapter go
out only as ciphertext under a key that never left the gateway's memory and the pod's
stdin (which is not logged).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import logging
import math
import re
import signal
import struct
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any, Final, Protocol

from bulkhead.crypto.channel import ChannelOpener, ChannelSealer
from bulkhead.finetune import child
from bulkhead.finetune.contract import (
    FAIL_REASONS,
    FailReason,
    Outcome,
    RunLimits,
    TrainEvent,
    TrainInput,
)
from bulkhead.runtime.worker import frames
from bulkhead.runtime.worker.adapter_format import MAX_CONFIG_BYTES, MAX_WEIGHTS_BYTES

log = logging.getLogger("bulkhead.finetune")

SEALED_MODULE: Final = "bulkhead.finetune.stream"
MAX_EVENT_BYTES: Final = 1 << 16
# The events of one job kept (in memory, for its readers, and as rows of its events); the
# process may write any number, so later ones only move its token count and last step.
MAX_EVENTS: Final = 10_000
MAX_TOKENS: Final = 1 << 53  # a count past this is not one (and past a BIGINT, or JSON's)
MAX_ADAPTER_FILES: Final = 16
# What `adapter_format.check_adapter` could accept (each file and all together): a process
# that announces more is refused before the gateway holds a byte of it.
MAX_ADAPTER_BYTES: Final = MAX_WEIGHTS_BYTES
MAX_ADAPTER_TOTAL: Final = MAX_WEIGHTS_BYTES + MAX_CONFIG_BYTES
_EVENT_KINDS: Final = frozenset({"status", "metrics", "checkpoint", "message"})
_SIGXCPU: Final = int(signal.SIGXCPU)
STOP_TEXT: Final[dict[str, str]] = {
    "cancelled": "the job was cancelled",
    "timeout": "the job ran past its time limit",
}


class Writer(Protocol):
    """The process's stdin, as asyncio's `StreamWriter` has it."""

    def write(self, data: bytes | bytearray) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class StreamRun:
    """One running job's events and outcome; implements `contract.RunHandle`.  Any number of
    readers may follow `events()`; each sees every event from the first."""

    def __init__(self, job_id: str, limits: RunLimits) -> None:
        self.job_id = job_id
        self._limits = limits
        self._events: list[TrainEvent] = []
        self._changed = asyncio.Condition()
        self._stopping: FailReason | None = None
        self._task: asyncio.Task[Outcome] | None = None
        self._finished = False
        self._late = False  # events came past `MAX_EVENTS`; the most they reported:
        self._late_tokens = 0
        self._late_step = 0

    # What a runner provides -------------------------------------------------------------

    async def _connect(self) -> tuple[Writer, asyncio.StreamReader]:
        raise NotImplementedError

    async def _stop(self, reason: FailReason) -> None:
        """Stop the process for `reason` (cancelled or timeout); it has ended on return."""
        raise NotImplementedError

    async def _abort(self) -> None:
        """The stream broke: end the process now."""
        raise NotImplementedError

    async def _exit_code(self) -> int | None:
        """Wait for the process to end; its exit status (negative: the signal)."""
        raise NotImplementedError

    async def _finish(self) -> None:
        """After the end, whatever happened: nothing of the job may be left running."""

    def _oom(self) -> bool:
        """Whether the memory limit ended the process (read in `_finish` at the latest)."""
        return False

    # The contract -------------------------------------------------------------------------

    def _begin(self, header: bytes, job: TrainInput) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise(header, job))

    async def events(self) -> AsyncIterator[TrainEvent]:
        index = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._ready, index))
            while index < len(self._events):
                yield self._events[index]
                index += 1
            if self._finished and index >= len(self._events):
                return

    def _ready(self, index: int) -> bool:
        return index < len(self._events) or self._finished

    async def cancel(self) -> None:
        if not self._finished:
            await self._stop("cancelled")
        with contextlib.suppress(Exception):
            await self.outcome()

    async def outcome(self) -> Outcome:
        assert self._task is not None
        return await asyncio.shield(self._task)

    async def _record(self, event: TrainEvent) -> None:
        """Keep one of the process's events, or past `MAX_EVENTS` only its counts."""
        if len(self._events) < MAX_EVENTS:
            await self._add(event)
            return
        if not self._late:
            self._late = True
            text = f"More than {MAX_EVENTS} events: later ones are not recorded."
            await self._add(TrainEvent("message", step=event.step, text=text))
        self._late_tokens = max(self._late_tokens, event.tokens)
        self._late_step = max(self._late_step, event.step)

    async def _add(self, event: TrainEvent | None, *, last: bool = False) -> None:
        async with self._changed:
            if event is not None:
                self._events.append(event)
            self._finished = self._finished or last
            self._changed.notify_all()

    # Feeding, following, judging --------------------------------------------------------

    async def _supervise(self, header: bytes, job: TrainInput) -> Outcome:
        """Connect, feed the process, follow it to its end and decide the outcome."""
        feeder: asyncio.Task[None] | None = None

        async def run() -> Outcome:
            nonlocal feeder
            stdin, stdout = await self._connect()
            feeder = asyncio.get_running_loop().create_task(self._feed(stdin, header, job))
            return await self._follow(stdout)

        try:
            outcome = await asyncio.wait_for(run(), self._limits.wall_seconds)
        except TimeoutError:
            await self._stop("timeout")
            outcome = self._failed("timeout", STOP_TEXT["timeout"])
        except asyncio.CancelledError:
            await self._stop("cancelled")
            await self._add(None, last=True)
            raise
        finally:
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(BaseException):
                    await feeder
            await self._finish()
        outcome = self._judge(outcome)
        text = "succeeded" if outcome.succeeded else f"failed: {outcome.reason}"
        log.info("fine-tuning job %s %s", self.job_id, text)
        await self._add(TrainEvent("status", step=self._last_step(), text=text), last=True)
        return outcome

    async def _feed(self, stdin: Writer, header: bytes, job: TrainInput) -> None:
        """Write the header and the frames (examples, then any base weights); close stdin."""
        files: list[tuple[str, bytes | bytearray]] = [
            (child.TRAINING, json.dumps(list(job.training)).encode()),
            (child.VALIDATION, json.dumps(list(job.validation)).encode()),
        ]
        if not isinstance(job.base, str):
            files += [(child.MODEL_PREFIX + name, data) for name, data in job.base]
        try:
            stdin.write(header)
            for chunk in frames.encode(files):
                stdin.write(chunk)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it ended early: its exit says why
        finally:
            del files
            stdin.close()

    async def _follow(self, stdout: asyncio.StreamReader) -> Outcome:
        """Read events until the end event (and adapter), then wait for the exit."""
        end: dict[str, Any] | None = None
        adapter: list[tuple[str, bytes]] = []
        try:
            while end is None:
                line = await stdout.readline()
                if not line:
                    break
                end = await self._line(line)
            if end is not None and end.get("status") == "succeeded":
                adapter = await read_frames(stdout)
        except (ValueError, asyncio.IncompleteReadError, frames.FrameError):
            # A line past the limit, cut-short frames or a record that does not open.
            await self._abort()
            end = None
        return self._from_end(end, adapter, await self._exit_code())

    async def _line(self, line: bytes) -> dict[str, Any] | None:
        """Handle one stdout line; returns the end event when it is one."""
        if line.startswith(b"SANDBOX "):
            self.sandbox_features = tuple(f for f in line[8:].decode().strip().split(",") if f)
            text = plain_text("sandbox: " + ",".join(self.sandbox_features))
            await self._record(TrainEvent("status", text=text))
            return None
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("an event is not an object")
        if data.get("kind") == "end":
            return data
        if data.get("kind") in _EVENT_KINDS:
            await self._record(event_of(data))
        return None

    sandbox_features: tuple[str, ...] = ()

    def _from_end(
        self, end: dict[str, Any] | None, adapter: list[tuple[str, bytes]], code: int | None
    ) -> Outcome:
        tokens = self._tokens()
        if end is not None and end.get("status") == "succeeded" and code == 0 and adapter:
            return Outcome.success(adapter, max(tokens, count(end.get("tokens"))))
        if end is not None and end.get("reason") in FAIL_REASONS:
            reason: FailReason = end["reason"]
            return self._failed(reason, plain_text(end.get("message", "")))
        if code == -_SIGXCPU:
            return self._failed("timeout", "the job ran past its CPU-time limit")
        return self._failed("crashed", f"the training process ended ({exit_text(code)})")

    def _judge(self, outcome: Outcome) -> Outcome:
        """The memory limit, a cancel or a timeout outranks whatever the process reported."""
        if self._oom():
            return self._failed("oom", "the job went over its memory limit")
        if self._stopping is not None and not outcome.succeeded:
            return self._failed(self._stopping, STOP_TEXT.get(self._stopping, self._stopping))
        return outcome

    def _failed(self, reason: FailReason, message: str) -> Outcome:
        return Outcome.failure(reason, message, self._tokens())

    def _tokens(self) -> int:
        return max(self._late_tokens, max((e.tokens for e in self._events), default=0))

    def _last_step(self) -> int:
        return max(self._late_step, max((e.step for e in self._events), default=0))


def event_of(data: dict[str, Any]) -> TrainEvent:
    """A `TrainEvent` from the child's JSON object, every field checked."""

    def loss(value: Any) -> float | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok and math.isfinite(value) else None

    return TrainEvent(
        kind=data["kind"],
        step=min(count(data.get("step")), 2**31 - 1),
        train_loss=loss(data.get("train_loss")),
        valid_loss=loss(data.get("valid_loss")),
        text=plain_text(data.get("text", "")),
        tokens=count(data.get("tokens")),
    )


_CONTROLS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain_text(value: Any) -> str:
    """A text the process wrote, as a job event or error may show it: at most 500
    characters, no control characters (PostgreSQL refuses a NUL in text; a terminal obeys
    an escape)."""
    return _CONTROLS.sub("", str(value)[:2000])[:500]


def count(value: Any) -> int:
    """A count the process reported, or 0 when it is not a plain one (a bool, a string, a
    float, negative, `MAX_TOKENS` or more)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_TOKENS
    return value if ok else 0


def exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit {code}"


async def read_frames(stream: asyncio.StreamReader) -> list[tuple[str, bytes]]:
    """The frames of `frames.encode`, from an asyncio stream, bounded for an adapter."""
    (count,) = struct.unpack(">I", await stream.readexactly(4))
    if not 0 < count <= MAX_ADAPTER_FILES:
        raise frames.FrameError("an adapter has 1 to 16 files")
    out = []
    total = 0
    for _ in range(count):
        (length,) = struct.unpack(">H", await stream.readexactly(2))
        if not 0 < length <= frames.MAX_NAME_BYTES:
            raise frames.FrameError("an adapter file name is empty or too long")
        name = (await stream.readexactly(length)).decode("utf-8", errors="strict")
        (size,) = struct.unpack(">Q", await stream.readexactly(8))
        total += size
        if size > MAX_ADAPTER_BYTES or total > MAX_ADAPTER_TOTAL:
            raise frames.FrameError("an adapter file is too large")
        out.append((name, await stream.readexactly(size)))
    return out


def stdin_header(job: TrainInput, nan_at_step: int | None = None) -> bytes:
    """The child's first stdin line: the bundled base's name (or null: weights follow as
    frames), the hyper-parameters and, for tests only, a step from which the loss is NaN."""
    header = {
        "base": job.base if isinstance(job.base, str) else None,
        "hyper": asdict(job.hyper),
        "nan_at_step": nan_at_step,
    }
    return json.dumps(header).encode() + b"\n"


# The sealed stdout ----------------------------------------------------------------------


def seal_line(key: bytes) -> bytes:
    """The first stdin line of the sealed child: the channel key."""
    return json.dumps({"seal": base64.b64encode(key).decode()}).encode() + b"\n"


async def open_sealed(
    raw: asyncio.StreamReader, key: bytes, *, chunk: int = 1 << 16
) -> asyncio.StreamReader:
    """A reader of the plaintext of the sealed stream `raw` (`ChannelOpener`), filled by a
    task; a record that does not open ends it early, which the follower sees as a cut
    stream.  The task ends with `raw`."""
    plain = asyncio.StreamReader(limit=MAX_EVENT_BYTES)
    opener = ChannelOpener(key)

    async def pump() -> None:
        try:
            while not opener.broken and (data := await raw.read(chunk)):
                plain.feed_data(opener.feed(data))
        except Exception as exc:  # any failure is a cut stream, judged by the follower
            log.warning("the sealed training stream broke (%s)", type(exc).__name__)
        finally:
            plain.feed_eof()

    task = asyncio.get_running_loop().create_task(pump())
    _PUMPS.add(task)
    task.add_done_callback(_PUMPS.discard)
    return plain


_PUMPS: set[asyncio.Task[None]] = set()


class _SealedOut(io.RawIOBase):
    """A binary stdout whose writes leave as sealed records."""

    def __init__(self, out: Any, key: bytes) -> None:
        self._out = out
        self._sealer = ChannelSealer(key)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._out.write(self._sealer.seal(view))
        self._out.flush()
        return len(view)


def main() -> int:
    """The child behind a sealed stdout (see the module's docstring)."""
    stdin = sys.stdin.buffer
    key = base64.b64decode(json.loads(stdin.readline(1024))["seal"], validate=True)
    sealed = io.BufferedWriter(_SealedOut(sys.stdout.buffer, key), buffer_size=1 << 16)
    # Held here: the child replaces sys.stdout, and a dropped wrapper closes its buffer.
    text = io.TextIOWrapper(sealed, encoding="utf-8")
    sys.stdout = text
    try:
        return child.main()
    finally:
        sealed.flush()
        text.detach()


if __name__ == "__main__":
    import os

    code = main()
    sys.stderr.flush()
    os._exit(code)
