"""The fine-tuning runner: each job in its own sandboxed process of the training tier.

`SandboxRunner.start` confines a fresh process with the worker sandbox
(`bulkhead.runtime.sandbox`): a uid of its own from the training range (apart from the
workers'), a network namespace with no interface but a down loopback, a memory cgroup and
rlimits (memory, CPU time, no file may grow past 4 KiB), seccomp, Landlock and a mount
namespace hiding the data dir.  The job's base weights (decrypted by the caller) and examples
go in over the process's stdin (`child`), and the adapter comes back over its stdout, so
neither is ever written to a disk.

The process's JSON-line events become `TrainEvent`s; its end becomes the `Outcome`:

    succeeded     an "end" event, exit 0, the adapter frames
    nan_loss      the loss was not finite (the trainer says so)
    oom           its cgroup's OOM killer ended it, or it ran out of memory (MemoryError)
    timeout       past its wall-clock limit, or its CPU-time rlimit (SIGXCPU)
    cancelled     `RunHandle.cancel`: SIGTERM, then SIGKILL after `grace_s`; within 5 s
    crashed       any other end: a signal, a non-zero exit, a broken event stream
    invalid_data  the trainer found nothing to learn from, or an unusable base model
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import shutil
import signal
import struct
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from bulkhead.domain import Tier
from bulkhead.finetune import child
from bulkhead.finetune.contract import (
    FAIL_REASONS,
    FailReason,
    Outcome,
    RunLimits,
    TrainEvent,
    TrainInput,
)
from bulkhead.runtime.lineage import SUPERVISOR_ENV
from bulkhead.runtime.sandbox import (
    Confinement,
    Host,
    Limits,
    Sandbox,
    SandboxMode,
    SandboxPolicy,
    probe_host,
)
from bulkhead.runtime.worker import frames
from bulkhead.runtime.workers import worker_env

log = logging.getLogger("bulkhead.finetune")

CHILD_MODULE: Final = "bulkhead.finetune.child"
MAX_EVENT_BYTES: Final = 1 << 16
MAX_ADAPTER_FILES: Final = 16
MAX_ADAPTER_BYTES: Final = 1 << 30
_EVENT_KINDS: Final = frozenset({"status", "metrics", "checkpoint", "message"})
_SIGXCPU: Final = int(signal.SIGXCPU)
_STOP_TEXT: Final = {
    "cancelled": "the job was cancelled",
    "timeout": "the job ran past its time limit",
}


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """How jobs are confined.  Training uids come from their own range, apart from the
    workers' (910000 and up by default); `hidden` must name the gateway's data dir."""

    mode: SandboxMode = SandboxMode.ON
    uid_base: int = 930_000
    uid_count: int = 1000
    limits: RunLimits = field(default_factory=RunLimits)
    hidden: tuple[Path, ...] = ()
    # SIGTERM, then SIGKILL after this long: cancel ends a job within 5 s.
    grace_s: float = 2.0


class SandboxRunner:
    """Starts each job in its own sandboxed process; implements `contract.Runner`."""

    def __init__(
        self,
        config: RunnerConfig | None = None,
        *,
        host: Host | None = None,
        nan_at_step: int | None = None,
    ) -> None:
        """`nan_at_step` makes every job's loss NaN from that step on: for tests only."""
        self.config = config or RunnerConfig()
        enabled = self.config.mode is not SandboxMode.OFF
        self.host = host if host is not None or not enabled else probe_host()
        self._nan_at_step = nan_at_step
        self._dir = Path(tempfile.mkdtemp(prefix="bulkhead-train-"))
        # Jobs with uids of their own must pass through to their own 0700 directories.
        os.chmod(self._dir, 0o711 if enabled else 0o700)
        self._uids: set[int] = set()
        self._handles: set[SandboxRunHandle] = set()

    @property
    def directory(self) -> Path:
        """Where the jobs' (empty, private) home directories are made."""
        return self._dir

    def sandbox_for(self, limits: RunLimits) -> tuple[Sandbox, int]:
        """A sandbox for one job: a free uid of the training range and the job's limits.

        The uid stays taken until `free_uid`.  (The security tests run their escape probe
        in a job's sandbox this way.)"""
        cfg = self.config
        uid = next(
            (u for u in range(cfg.uid_base, cfg.uid_base + cfg.uid_count) if u not in self._uids),
            None,
        )
        if uid is None:
            raise RuntimeError("every training uid is in use")
        self._uids.add(uid)
        box_limits = Limits(
            memory_bytes=limits.memory_bytes,
            cpu_seconds=limits.cpu_seconds,
            open_files=256,
            processes=256,  # threads count here too
            # It writes no file; tempfile writes 4 bytes to check its directory.
            file_bytes=4096,
        )
        policy = SandboxPolicy(
            mode=cfg.mode,
            uid_base=uid,
            uid_count=1,
            limits={Tier.SHARED: box_limits},
            hidden=cfg.hidden,
        )
        return Sandbox(policy, host=self.host), uid

    def free_uid(self, uid: int) -> None:
        self._uids.discard(uid)

    async def start(self, job_id: str, tenant_id: str, job: TrainInput) -> SandboxRunHandle:
        limits = job.limits or self.config.limits
        sandbox, uid = self.sandbox_for(limits)
        confinement: Confinement | None = None
        try:
            if sandbox.enabled:
                confinement = sandbox.confine(self._dir, Tier.SHARED)
            process = await self._spawn(confinement, limits)
        except BaseException:
            if confinement is not None:
                sandbox.release(confinement)
            self.free_uid(uid)
            raise
        handle = SandboxRunHandle(job_id, process, confinement, limits, self.config.grace_s)

        def cleanup() -> None:
            if confinement is not None:
                sandbox.release(confinement)
            self.free_uid(uid)
            self._handles.discard(handle)

        handle._begin(self._stdin_header(job), job, cleanup)
        self._handles.add(handle)
        log.info("fine-tuning job %s of %s started (pid %d)", job_id, tenant_id, process.pid)
        return handle

    async def _spawn(
        self, confinement: Confinement | None, limits: RunLimits
    ) -> asyncio.subprocess.Process:
        env = {**worker_env(), SUPERVISOR_ENV: str(os.getpid())}
        env["OMP_NUM_THREADS"] = str(limits.threads)
        if confinement is None:
            argv = [sys.executable, "-I", "-B", "-m", CHILD_MODULE]
            cwd = str(self._dir)
        else:
            env.update(confinement.env())
            argv, cwd = confinement.argv(CHILD_MODULE, []), str(confinement.directory)
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            limit=MAX_EVENT_BYTES,
        )

    def _stdin_header(self, job: TrainInput) -> bytes:
        header = {
            "base": job.base if isinstance(job.base, str) else None,
            "hyper": asdict(job.hyper),
            "nan_at_step": self._nan_at_step,
        }
        return json.dumps(header).encode() + b"\n"

    async def close(self) -> None:
        """Cancel every running job and remove the runner's directory."""
        await asyncio.gather(*(h.cancel() for h in list(self._handles)), return_exceptions=True)
        shutil.rmtree(self._dir, ignore_errors=True)


class SandboxRunHandle:
    """One running job; implements `contract.RunHandle`.  Any number of readers may follow
    `events()`; each sees every event from the first."""

    def __init__(
        self,
        job_id: str,
        process: asyncio.subprocess.Process,
        confinement: Confinement | None,
        limits: RunLimits,
        grace_s: float,
    ) -> None:
        self.job_id = job_id
        self.process = process
        self.sandbox_features: tuple[str, ...] = ()
        self._confinement = confinement
        self._limits = limits
        self._grace_s = grace_s
        self._events: list[TrainEvent] = []
        self._changed = asyncio.Condition()
        self._stopping: FailReason | None = None
        self._task: asyncio.Task[Outcome] | None = None
        self._finished = False
        self._oom = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def _begin(self, header: bytes, job: TrainInput, cleanup: Any) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise(header, job, cleanup))

    async def events(self) -> AsyncIterator[TrainEvent]:
        index = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._ready, index))
            while index < len(self._events):
                yield self._events[index]
                index += 1
            if self._over() and index >= len(self._events):
                return

    def _ready(self, index: int) -> bool:
        return index < len(self._events) or self._over()

    def _over(self) -> bool:
        return self._finished

    async def cancel(self) -> None:
        if not self._over():
            await self._stop("cancelled")
        with contextlib.suppress(Exception):
            await self.outcome()

    async def outcome(self) -> Outcome:
        assert self._task is not None
        return await asyncio.shield(self._task)

    async def _add(self, event: TrainEvent | None, *, last: bool = False) -> None:
        async with self._changed:
            if event is not None:
                self._events.append(event)
            self._finished = self._finished or last
            self._changed.notify_all()

    async def _stop(self, reason: FailReason) -> None:
        """SIGTERM the job's process group, then SIGKILL it after the grace period."""
        if self._stopping is None:
            self._stopping = reason
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), self._grace_s)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await self.process.wait()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    async def _supervise(self, header: bytes, job: TrainInput, cleanup: Any) -> Outcome:
        """Feed the process, follow it to its end and decide the outcome."""
        writer = asyncio.get_running_loop().create_task(self._feed(header, job))
        try:
            outcome = await asyncio.wait_for(self._follow(), self._limits.wall_seconds)
        except TimeoutError:
            await self._stop("timeout")
            outcome = self._failed("timeout", "the job ran past its time limit")
        except asyncio.CancelledError:
            await self._stop("cancelled")
            await self._add(None, last=True)
            raise
        finally:
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer
            self._signal(signal.SIGKILL)  # anything it left behind in its process group
            with contextlib.suppress(Exception):
                await self.process.wait()
            # Read before the cgroup goes with the sandbox.
            self._oom = self._confinement is not None and self._confinement.oom_kills() > 0
            cleanup()
        outcome = self._judge(outcome)
        text = "succeeded" if outcome.succeeded else f"failed: {outcome.reason}"
        log.info("fine-tuning job %s %s", self.job_id, text)
        await self._add(TrainEvent("status", step=self._last_step(), text=text), last=True)
        return outcome

    async def _feed(self, header: bytes, job: TrainInput) -> None:
        """Write the header and the frames (examples, then any base weights); close stdin."""
        stdin = self.process.stdin
        assert stdin is not None
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

    async def _follow(self) -> Outcome:
        """Read events until the end event (and adapter), then wait for the exit."""
        stdout = self.process.stdout
        assert stdout is not None
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
            # A line past the limit or cut-short frames: a broken stream.
            self._signal(signal.SIGKILL)
            end = None
        await self.process.wait()
        return self._from_end(end, adapter)

    async def _line(self, line: bytes) -> dict[str, Any] | None:
        """Handle one stdout line; returns the end event when it is one."""
        if line.startswith(b"SANDBOX "):
            self.sandbox_features = tuple(f for f in line[8:].decode().strip().split(",") if f)
            text = "sandbox: " + ",".join(self.sandbox_features)
            await self._add(TrainEvent("status", text=text))
            return None
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("an event is not an object")
        if data.get("kind") == "end":
            return data
        if data.get("kind") in _EVENT_KINDS:
            await self._add(_event(data))
        return None

    def _from_end(self, end: dict[str, Any] | None, adapter: list[tuple[str, bytes]]) -> Outcome:
        code = self.process.returncode
        tokens = self._tokens()
        if end is not None and end.get("status") == "succeeded" and code == 0 and adapter:
            return Outcome.success(adapter, int(end.get("tokens", tokens)))
        if end is not None and end.get("reason") in FAIL_REASONS:
            reason: FailReason = end["reason"]
            return self._failed(reason, str(end.get("message", ""))[:500])
        if code == -_SIGXCPU:
            return self._failed("timeout", "the job ran past its CPU-time limit")
        return self._failed("crashed", f"the training process ended ({_exit_text(code)})")

    def _judge(self, outcome: Outcome) -> Outcome:
        """The memory limit, a cancel or a timeout outranks whatever the process reported."""
        if self._oom:
            return self._failed("oom", "the job went over its memory limit")
        if self._stopping is not None and not outcome.succeeded:
            text = {
                "cancelled": "the job was cancelled",
                "timeout": "the job ran past its time limit",
            }
            return self._failed(self._stopping, text.get(self._stopping, self._stopping))
        return outcome

    def _failed(self, reason: FailReason, message: str) -> Outcome:
        return Outcome.failure(reason, message, self._tokens())

    def _tokens(self) -> int:
        return max((e.tokens for e in self._events), default=0)

    def _last_step(self) -> int:
        return max((e.step for e in self._events), default=0)


def _event(data: dict[str, Any]) -> TrainEvent:
    def loss(value: Any) -> float | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok and math.isfinite(value) else None

    step, tokens = data.get("step", 0), data.get("tokens", 0)
    return TrainEvent(
        kind=data["kind"],
        step=step if isinstance(step, int) else 0,
        train_loss=loss(data.get("train_loss")),
        valid_loss=loss(data.get("valid_loss")),
        text=str(data.get("text", ""))[:500],
        tokens=tokens if isinstance(tokens, int) else 0,
    )


def _exit_text(code: int | None) -> str:
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
    for _ in range(count):
        (length,) = struct.unpack(">H", await stream.readexactly(2))
        if not 0 < length <= frames.MAX_NAME_BYTES:
            raise frames.FrameError("an adapter file name is empty or too long")
        name = (await stream.readexactly(length)).decode("utf-8", errors="strict")
        (size,) = struct.unpack(">Q", await stream.readexactly(8))
        if size > MAX_ADAPTER_BYTES:
            raise frames.FrameError("an adapter file is too large")
        out.append((name, await stream.readexactly(size)))
    return out
