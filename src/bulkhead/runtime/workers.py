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

With worker mTLS (on unless BULKHEAD_WORKER_MTLS=0) the worker also gets an
SVID, ``spiffe://<td>/tenant/<tenant or _shared>/worker/<deployment>``, with
its key and the CA certificate, as one more batch of frames after the token
(and weights): in memory, never in a file.  It then serves TLS on its socket
and admits only the gateway's ID; the gateway admits only that worker's ID,
and the bearer token is still checked.  The worker has no CA key, so it
cannot renew its certificate: its stdin stays open and the supervisor writes
a fresh SVID into it at half the lifetime, which the worker swaps in for new
handshakes while open connections carry on.  Rotation needs no restart and
drops no request.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bulkhead.crypto import EXPORT_KEY_MATERIAL
from bulkhead.errors import Unavailable
from bulkhead.identity.ca import DEFAULT_LIFETIME, InternalCA
from bulkhead.identity.spiffe import SHARED_TENANT, workload_id
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
    # The owner tenant, named in the worker's SPIFFE ID; None for a shared model.
    tenant: str | None = None


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
    spiffe_id: str | None = None  # set when the channel is mutual TLS
    rotations: int = 0


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
    def __init__(
        self,
        *,
        startup_timeout_s: float = 120.0,
        max_backoff_s: float = 30.0,
        ca: InternalCA | None = None,
        svid_lifetime: timedelta = DEFAULT_LIFETIME,
    ):
        """With `ca`, every worker channel is mutual TLS with SVIDs of `svid_lifetime`."""
        self.startup_timeout_s = startup_timeout_s
        self.max_backoff_s = max_backoff_s
        self._ca, self.svid_lifetime = ca, svid_lifetime
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
                    spiffe_id=self._worker_id(spec),
                )
                self._workers[key] = worker
                worker.task = asyncio.get_running_loop().create_task(self._keep_running(worker))

    def _worker_id(self, spec: WorkerSpec) -> str | None:
        if self._ca is None:
            return None
        tenant = spec.tenant or SHARED_TENANT
        return str(workload_id(self._ca.trust_domain, "tenant", tenant, "worker", spec.key))

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
            peer_id=worker.spiffe_id,
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
                "spiffe_id": w.spiffe_id,
                "rotations": w.rotations,
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
            *(["--mtls"] if worker.spiffe_id else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=worker_env(),
            cwd=str(self._dir),
            start_new_session=True,
        )
        worker.process = process
        assert process.stdin is not None and process.stdout is not None
        stdin, rotation = process.stdin, None
        try:
            # The order the worker reads: token line, weights (some kinds), SVIDs (mTLS).
            stdin.write(worker.token.encode() + b"\n")
            if spec.kind in WEIGHTS_ON_STDIN:
                for chunk in frames.encode(weights):
                    stdin.write(chunk)
                    await stdin.drain()
            if worker.spiffe_id is not None:
                stdin.writelines(self._identity_frames(worker.spiffe_id))
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            log.warning("worker %s closed its stdin early", spec.kind)
        finally:
            del weights
            if worker.spiffe_id is None:
                stdin.close()
        try:
            if worker.spiffe_id is not None:
                rotation = asyncio.get_running_loop().create_task(self._rotate(worker, stdin))
            line = await asyncio.wait_for(process.stdout.readline(), self.startup_timeout_s)
            if line.startswith(b"READY"):
                worker.ready = True
                log.info("worker %s ready (pid %d)", spec.kind, process.pid)
            await process.wait()
        finally:
            if rotation is not None:
                rotation.cancel()
            stdin.close()

    def _identity_frames(self, spiffe_id: str) -> Iterator[bytes | bytearray]:
        """A fresh SVID for `spiffe_id`, its key and the CA certificate, as frames."""
        assert self._ca is not None
        svid = self._ca.issue(spiffe_id, self.svid_lifetime)
        pem = svid.cert_pem + svid.key.reveal_pem(EXPORT_KEY_MATERIAL)
        return frames.encode([("ca.pem", self._ca.cert_pem), ("svid.pem", pem)])

    async def _rotate(self, worker: _Worker, stdin: asyncio.StreamWriter) -> None:
        """Send the worker a new SVID at each half of its lifetime."""
        assert worker.spiffe_id is not None
        while True:
            await asyncio.sleep(self.svid_lifetime.total_seconds() / 2)
            try:
                stdin.writelines(self._identity_frames(worker.spiffe_id))
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                return  # The worker is gone; `_keep_running` restarts it.
            worker.rotations += 1

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
