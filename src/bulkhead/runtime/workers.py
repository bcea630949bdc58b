"""Starts, watches and restarts local model worker processes.

Each local deployment gets its own worker process, which serves one model
over HTTP on a Unix socket in a private (0700) directory and accepts only
requests that carry its per-process token.  The worker's environment is
scrubbed: in particular an inherited CUDA_VISIBLE_DEVICES or
NVIDIA_VISIBLE_DEVICES is never passed through.  While a worker is starting
or down, its callers get a clean 503; other deployments are unaffected.

A worker that serves an imported model (kind ``hf-causal``) gets its files
from the spec's `load_weights`, which decrypts them and checks their SHA-256
in the gateway process; the supervisor writes them into the worker's stdin
after the token, so decrypted weights never touch the disk.  If they fail to
load or verify, the worker is not started and its callers keep getting 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bulkhead.errors import Unavailable
from bulkhead.runtime.upstream import Target
from bulkhead.runtime.worker import frames

log = logging.getLogger("bulkhead.workers")

KINDS = frozenset({"demo-chat", "minilm-embed", "hf-causal"})
WEIGHTS_ON_STDIN = frozenset({"hf-causal"})
WeightsLoader = Callable[[], Sequence[tuple[str, bytes | bytearray]]]
_ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    key: str  # the deployment id
    kind: str
    model_name: str
    timeout_s: float = 120.0
    # What to load (e.g. the artifact id): a changed source restarts the worker.
    source: str = ""
    # Decrypts and verifies the model files in memory (kinds in WEIGHTS_ON_STDIN).
    load_weights: WeightsLoader | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class _Worker:
    spec: WorkerSpec
    socket: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    process: asyncio.subprocess.Process | None = None
    ready: bool = False
    restarts: int = 0
    task: asyncio.Task[None] | None = None
    started_at: float = 0.0


def worker_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _ENV_PASSTHROUGH if k in os.environ}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class WorkerSupervisor:
    def __init__(self, *, startup_timeout_s: float = 120.0, max_backoff_s: float = 30.0):
        self.startup_timeout_s = startup_timeout_s
        self.max_backoff_s = max_backoff_s
        self._dir = Path(tempfile.mkdtemp(prefix="bulkhead-workers-"))
        os.chmod(self._dir, 0o700)
        self._workers: dict[str, _Worker] = {}
        self._closing = False

    def sync(self, specs: Iterable[WorkerSpec]) -> None:
        """Start workers for new specs and stop those no longer wanted."""
        wanted = {s.key: s for s in specs if s.kind in KINDS}
        for key in list(self._workers):
            if key not in wanted or self._workers[key].spec != wanted[key]:
                self._stop(self._workers.pop(key))
        for key, spec in wanted.items():
            if key not in self._workers:
                worker = _Worker(
                    spec=spec,
                    socket=str(self._dir / f"{len(self._workers)}-{secrets.token_hex(4)}.sock"),
                )
                self._workers[key] = worker
                worker.task = asyncio.get_running_loop().create_task(self._keep_running(worker))

    def target(self, key: str, timeout_s: float) -> Target:
        worker = self._workers.get(key)
        if worker is None:
            raise Unavailable("The model's local worker is not configured on this gateway.")
        if not worker.ready:
            raise Unavailable("The model's local worker is starting or restarting; retry shortly.")
        return Target(
            base_url="http://worker/v1",
            upstream_model=worker.spec.model_name,
            timeout_s=timeout_s,
            unix_socket=worker.socket,
            headers={"authorization": f"Bearer {worker.token}"},
        )

    def status(self) -> list[dict[str, object]]:
        return [
            {
                "deployment": w.spec.key,
                "kind": w.spec.kind,
                "model": w.spec.model_name,
                "ready": w.ready,
                "pid": w.process.pid if w.process else None,
                "restarts": w.restarts,
            }
            for w in self._workers.values()
        ]

    async def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(w.ready for w in self._workers.values()):
                return True
            await asyncio.sleep(0.1)
        return False

    async def _keep_running(self, worker: _Worker) -> None:
        backoff = 0.5
        while not self._closing:
            worker.started_at = time.monotonic()
            try:
                await self._run_once(worker)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # A worker failure must never take the gateway down.
                log.warning("worker %s failed: %s", worker.spec.kind, type(exc).__name__)
            worker.ready = False
            if self._closing:
                return
            if time.monotonic() - worker.started_at > 60:
                backoff = 0.5
            worker.restarts += 1
            log.warning("worker %s exited; restarting in %.1fs", worker.spec.kind, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _run_once(self, worker: _Worker) -> None:
        spec = worker.spec
        weights: Sequence[tuple[str, bytes | bytearray]] = []
        if spec.kind in WEIGHTS_ON_STDIN:
            if spec.load_weights is None:
                raise RuntimeError("no model files to load")
            try:
                weights = await asyncio.to_thread(spec.load_weights)
            except Exception as exc:
                # Fail closed: the worker is not started, its callers get 503.
                log.error(
                    "worker %s for %s not started: its model files failed to load or verify (%s)",
                    spec.kind,
                    spec.model_name,
                    type(exc).__name__,
                )
                raise
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bulkhead.runtime.worker",
            "--socket",
            worker.socket,
            "--kind",
            spec.kind,
            "--model-name",
            spec.model_name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=worker_env(),
            cwd=str(self._dir),
            start_new_session=True,
        )
        worker.process = process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(worker.token.encode() + b"\n")
            if spec.kind in WEIGHTS_ON_STDIN:
                for chunk in frames.encode(weights):
                    process.stdin.write(chunk)
                    await process.stdin.drain()
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            log.warning("worker %s closed its stdin early", spec.kind)
        finally:
            del weights
            process.stdin.close()
        line = await asyncio.wait_for(process.stdout.readline(), self.startup_timeout_s)
        if line.startswith(b"READY"):
            worker.ready = True
            log.info("worker %s ready (pid %d)", spec.kind, process.pid)
        await process.wait()

    def _stop(self, worker: _Worker) -> None:
        worker.ready = False
        if worker.task is not None:
            worker.task.cancel()
        if worker.process is not None and worker.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.terminate()

    async def close(self) -> None:
        self._closing = True
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            self._stop(worker)
        for worker in workers:
            if worker.process is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker.process.wait(), 5)
                if worker.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
        shutil.rmtree(self._dir, ignore_errors=True)
