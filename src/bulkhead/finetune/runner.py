"""The fine-tuning runner: each job in its own sandboxed process of the training tier.

`SandboxRunner.start` confines a fresh process with the worker sandbox
(`bulkhead.runtime.sandbox`): a uid of its own from the training range (apart from the
workers'), a network namespace with no interface but a down loopback, a memory cgroup and
rlimits (memory, CPU time, no file may grow past 4 KiB), seccomp, Landlock and a mount
namespace hiding the data dir.  The job's base weights (decrypted by the caller) and examples
go in over the process's stdin (`child`), and the adapter comes back over its stdout, so
neither is ever written to a disk.  Its stderr is a pipe too, silenced by the process before
it reads an example and, on this side, kept only as a short scrubbed tail (`stderr_tail`).

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
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bulkhead.domain import Tier
from bulkhead.finetune.contract import FailReason, RunLimits, TrainInput
from bulkhead.finetune.stderr_tail import StderrTail
from bulkhead.finetune.stream import (
    MAX_EVENT_BYTES,
    StreamRun,
    Writer,
    read_frames,
    stdin_header,
)
from bulkhead.finetune.stream import event_of as _event
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
from bulkhead.runtime.workers import worker_env

log = logging.getLogger("bulkhead.finetune")

CHILD_MODULE: Final = "bulkhead.finetune.child"
__all__ = [
    "CHILD_MODULE",
    "RunnerConfig",
    "SandboxRunHandle",
    "SandboxRunner",
    "_event",
    "read_frames",
]


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

        handle._start(self._stdin_header(job), job, cleanup)
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
            # Never the gateway's own stderr: read into a bounded tail (`stderr_tail`).
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            limit=MAX_EVENT_BYTES,
        )

    def _stdin_header(self, job: TrainInput) -> bytes:
        return stdin_header(job, self._nan_at_step)

    async def close(self) -> None:
        """Cancel every running job and remove the runner's directory."""
        await asyncio.gather(*(h.cancel() for h in list(self._handles)), return_exceptions=True)
        shutil.rmtree(self._dir, ignore_errors=True)


class SandboxRunHandle(StreamRun):
    """One running job in its sandboxed process; implements `contract.RunHandle` (the
    protocol is `stream.StreamRun`'s; this adds the process and its signals)."""

    def __init__(
        self,
        job_id: str,
        process: asyncio.subprocess.Process,
        confinement: Confinement | None,
        limits: RunLimits,
        grace_s: float,
    ) -> None:
        super().__init__(job_id, limits)
        self.process = process
        self._confinement = confinement
        self._grace_s = grace_s
        self._oom_killed = False
        self._cleanup: Any = None
        self._stderr = StderrTail(job_id, process.stderr)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _start(self, header: bytes, job: TrainInput, cleanup: Any) -> None:
        self._cleanup = cleanup
        self._begin(header, job)

    async def _connect(self) -> tuple[Writer, asyncio.StreamReader]:
        assert self.process.stdin is not None and self.process.stdout is not None
        return self.process.stdin, self.process.stdout

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

    async def _abort(self) -> None:
        self._signal(signal.SIGKILL)

    async def _exit_code(self) -> int | None:
        return await self.process.wait()

    async def _finish(self) -> None:
        self._signal(signal.SIGKILL)  # anything it left behind in its process group
        with contextlib.suppress(Exception):
            await self.process.wait()
        await self._stderr.close()
        # Read before the cgroup goes with the sandbox.
        self._oom_killed = self._confinement is not None and self._confinement.oom_kills() > 0
        if self._cleanup is not None:
            self._cleanup()

    def _oom(self) -> bool:
        return self._oom_killed

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)
