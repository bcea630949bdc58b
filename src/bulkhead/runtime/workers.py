"""Starts, watches and restarts local model worker processes.

Each local deployment gets its own worker process, which serves one model
over HTTP on a Unix socket in a private (0700) directory and accepts only
requests that carry its per-process token.  The worker's environment is
scrubbed: in particular an inherited CUDA_VISIBLE_DEVICES or
NVIDIA_VISIBLE_DEVICES is never passed through.  While a worker is starting
or down, its callers get a clean 503; other deployments are unaffected.

A worker that serves an imported model (kind ``hf-causal``) gets its files
from the spec's `load_weights`, which decrypts them and checks their SHA-256
in the gateway process, on a thread, while the worker process starts and
imports its libraries; the supervisor then writes them into the worker's
stdin after the token, so decrypted weights never touch the disk.  If they
fail to load or verify, the worker is stopped before it gets a byte of them
and its callers keep getting 503.  A fine-tuned model's worker (kind ``hf-causal-lora``)
gets its LoRA adapter the same way, with its base's files or the bundled base's name
(`runtime.worker.lora`).  A bundled model's worker (kind ``smollm2-135m``)
gets no files: it finds its model in an installed package by its kind alone
(`runtime.worker.bundled`) and reads it where pip put it, read-only.

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

Each worker runs in a sandbox (`bulkhead.runtime.sandbox`) unless it is turned off: its
own uid, rlimits, a memory cgroup, no network, a filesystem view without the data dir
(Landlock and a mount namespace) and a seccomp filter, with limits chosen by the
tenant's tier.  The worker reports which features the kernel actually holds it to
before it reads anything from the supervisor; `status` lists them, and in `require`
mode a worker missing one is stopped.  A GPU assignment's variables (`device_env`)
are the only device settings a worker gets.

A worker that exits before it was ever ready `max_failed_starts` times in a row (a
model that does not load) is given up on, state "failed", instead of restarted for
ever.  Workers die with the gateway (`lineage`): the kernel kills them when the
event-loop thread that started them ends, and a gateway starting on the same data
dir reaps what one that died (kill -9) left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

from bulkhead.crypto import EXPORT_KEY_MATERIAL
from bulkhead.errors import ConfigError, Unavailable
from bulkhead.identity.ca import DEFAULT_LIFETIME, InternalCA
from bulkhead.identity.spiffe import SHARED_TENANT, workload_id
from bulkhead.runtime._worker_state import WorkerSpec, WorkerState
from bulkhead.runtime.lineage import SUPERVISOR_ENV, WORKERS_DIR_PREFIX, WorkerLedger
from bulkhead.runtime.sandbox import Sandbox, SandboxMode
from bulkhead.runtime.upstream import Target
from bulkhead.runtime.worker import frames

log = logging.getLogger("bulkhead.workers")

KINDS = frozenset({"demo-chat", "minilm-embed", "hf-causal", "smollm2-135m", "hf-causal-lora"})
WEIGHTS_ON_STDIN = frozenset({"hf-causal", "hf-causal-lora"})
_ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "TZ")
WORKER_MODULE = "bulkhead.runtime.worker"
# How often a worker's renewal loop looks for a CA rotation (a comparison of two ints).
CA_POLL_S = 0.5


def worker_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _ENV_PASSTHROUGH if k in os.environ}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        TQDM_DISABLE="1",  # no progress bars (a GGUF's de-quantization) in the logs
        PYTHONDONTWRITEBYTECODE="1",
        # No GPU unless the worker's assignment names one (`device_env`).
        CUDA_VISIBLE_DEVICES="",
    )
    return env


class WorkerSupervisor:
    def __init__(
        self,
        *,
        startup_timeout_s: float = 120.0,
        max_backoff_s: float = 30.0,
        max_failed_starts: int = 5,
        ca: InternalCA | None = None,
        svid_lifetime: timedelta = DEFAULT_LIFETIME,
        sandbox: Sandbox | None = None,
        worker_module: str = WORKER_MODULE,
        ledger_dir: Path | None = None,
    ):
        """With `ca`, every worker channel is mutual TLS with SVIDs of `svid_lifetime`.

        Without `sandbox`, workers get the default one: on, with what this host allows.
        `worker_module` is what the worker process runs; tests swap in instrumented ones.
        A worker that exits `max_failed_starts` times in a row before it was ever ready
        (a model that does not load) is given up on: state "failed", until its spec
        changes or the gateway restarts, rather than restarted for ever.
        With `ledger_dir` (in the data dir), running workers are recorded there, and
        those a supervisor that died left behind are killed now (`lineage`).
        """
        self.startup_timeout_s = startup_timeout_s
        self.max_backoff_s = max_backoff_s
        self.max_failed_starts = max_failed_starts
        self._ca, self.svid_lifetime = ca, svid_lifetime
        self.sandbox = sandbox if sandbox is not None else Sandbox()
        self._module = worker_module
        self._dir = Path(tempfile.mkdtemp(prefix=WORKERS_DIR_PREFIX))
        self._ledger = WorkerLedger(ledger_dir, self._dir) if ledger_dir is not None else None
        if self._ledger is not None:
            self._ledger.reap_orphans()
        # Workers with uids of their own must pass through to their own 0700 directories.
        os.chmod(self._dir, 0o711 if self.sandbox.enabled else 0o700)
        self._workers: dict[str, WorkerState] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._closing = False
        log.info("%s", self.sandbox.describe())

    def sync(self, specs: Iterable[WorkerSpec]) -> None:
        """Start workers for new specs and stop those no longer wanted."""
        wanted = {s.key: s for s in specs if s.kind in KINDS}
        for key in list(self._workers):
            if key not in wanted or self._workers[key].spec != wanted[key]:
                self._stop(self._workers.pop(key))
        for key, spec in wanted.items():
            if key not in self._workers:
                worker = WorkerState(
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
        if worker.given_up:
            raise Unavailable(
                "The model's local worker failed to start and was stopped; "
                "the model must be fixed or imported again."
            )
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
        # A copy first: the metrics scrape reads this from its own thread while `sync` runs.
        return [w.status() for w in tuple(self._workers.values())]

    async def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(w.ready for w in self._workers.values()):
                return True
            await asyncio.sleep(0.1)
        return False

    def _confine(self, worker: WorkerState) -> None:
        """Prepare the worker's sandbox once; it is kept across restarts."""
        if not self.sandbox.enabled or worker.confinement is not None:
            return
        gpu = bool(worker.spec.device_env.get("CUDA_VISIBLE_DEVICES"))
        worker.confinement = self.sandbox.confine(self._dir, worker.spec.tier, gpu=gpu)
        worker.socket = str(worker.confinement.directory / "worker.sock")

    async def _keep_running(self, worker: WorkerState) -> None:
        backoff = 0.5
        try:
            self._confine(worker)
        except (ConfigError, OSError) as exc:
            # Fail closed: no sandbox, no worker; its callers get 503.
            log.error("worker %s not started: its sandbox failed: %s", worker.spec.kind, exc)
            worker.last_exit = f"not started: its sandbox failed: {exc}"
            return
        while not self._closing:
            worker.started_at = time.monotonic()
            try:
                await self._run_once(worker)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # A worker failure must never take the gateway down.
                log.warning("worker %s failed: %s", worker.spec.kind, type(exc).__name__)
                await _kill(worker.process)  # e.g. silent past its start-up timeout
            was_ready, worker.ready = worker.ready, False
            if self._ledger is not None:
                self._ledger.ended(worker.record)
            if self._closing:
                return
            self._note_exit(worker)
            worker.failed_starts = 0 if was_ready else worker.failed_starts + 1
            if worker.failed_starts >= self.max_failed_starts:
                self._give_up(worker)
                return
            if time.monotonic() - worker.started_at > 60:
                backoff = 0.5
            worker.restarts += 1
            log.warning("worker %s exited; restarting in %.1fs", worker.spec.kind, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    def _give_up(self, worker: WorkerState) -> None:
        """Stop restarting a worker that never gets ready: its model does not load."""
        worker.given_up = True
        worker.last_exit = (
            f"gave up after {worker.failed_starts} failed starts ({worker.last_exit})"
        )
        log.error(
            "worker %s for %s failed to start %d times in a row; not restarting it "
            "(fix or re-import the model, or restart the gateway)",
            worker.spec.kind,
            worker.spec.model_name,
            worker.failed_starts,
        )

    def _note_exit(self, worker: WorkerState) -> None:
        """Record how the worker ended; say so loudly when its memory limit killed it."""
        code = worker.process.returncode if worker.process else None
        worker.last_exit = None if code is None else f"exit {code}"
        if code is not None and code < 0:
            worker.last_exit = f"signal {-code}"
        kills = worker.confinement.oom_kills() if worker.confinement else 0
        if kills > worker.oom_kills:
            worker.oom_kills, worker.last_exit = kills, "killed: over its memory limit"
            log.error("worker %s was killed for going over its memory limit", worker.spec.kind)

    def _command(self, worker: WorkerState) -> tuple[list[str], dict[str, str], str]:
        """The worker's argv, environment and working directory."""
        spec = worker.spec
        args = ["--socket", worker.socket, "--kind", spec.kind, "--model-name", spec.model_name]
        args += ["--mtls"] if worker.spiffe_id else []
        # The worker checks this against its parent as it arms its parent-death signal.
        env = {**worker_env(), **spec.device_env, SUPERVISOR_ENV: str(os.getpid())}
        confinement = worker.confinement
        if confinement is None:
            return [sys.executable, "-I", "-B", "-m", self._module, *args], env, str(self._dir)
        _empty(confinement.directory)
        env.update(confinement.env())
        return confinement.argv(self._module, args), env, str(confinement.directory)

    async def _run_once(self, worker: WorkerState) -> None:
        spec = worker.spec
        loading: asyncio.Future[Sequence[tuple[str, bytes | bytearray]]] | None = None
        if spec.kind in WEIGHTS_ON_STDIN:
            if spec.load_weights is None:
                raise RuntimeError("no model files to load")
            # Decrypting and verifying the files runs while the worker starts and
            # imports its libraries, so an encrypted model costs little start-up time.
            loading = asyncio.ensure_future(asyncio.to_thread(spec.load_weights))
        argv, env, cwd = self._command(worker)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except BaseException:
            if loading is not None:
                loading.cancel()
            raise
        worker.process = process
        if self._ledger is not None:
            cgroup = worker.confinement.cgroup if worker.confinement else None
            self._ledger.started(worker.record, process.pid, cgroup)
        assert process.stdin is not None and process.stdout is not None
        stdin, rotation = process.stdin, None
        try:
            # The order the worker reads: token line, weights (some kinds), SVIDs (mTLS).
            stdin.write(worker.token.encode() + b"\n")
            if loading is not None:
                await self._send_weights(worker, process, loading, stdin)
            if worker.spiffe_id is not None:
                stdin.writelines(self._identity_frames(worker.spiffe_id))
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            log.warning("worker %s closed its stdin early", spec.kind)
        finally:
            if worker.spiffe_id is None:
                stdin.close()
        try:
            if worker.spiffe_id is not None:
                rotation = asyncio.get_running_loop().create_task(self._rotate(worker, stdin))
            line = await asyncio.wait_for(process.stdout.readline(), self.startup_timeout_s)
            if worker.confinement is not None:
                line = await self._check_sandbox(worker, line, process)
            if line.startswith(b"READY"):
                worker.ready = True
                log.info("worker %s ready (pid %d)", spec.kind, process.pid)
            await process.wait()
        finally:
            if rotation is not None:
                rotation.cancel()
            stdin.close()

    async def _send_weights(
        self,
        worker: WorkerState,
        process: asyncio.subprocess.Process,
        loading: asyncio.Future[Sequence[tuple[str, bytes | bytearray]]],
        stdin: asyncio.StreamWriter,
    ) -> None:
        """Write the model files once they are decrypted and verified; else stop the worker."""
        try:
            weights = await loading
        except Exception as exc:
            # Fail closed: the worker never gets a byte of the model, its callers get 503.
            log.error(
                "worker %s for %s stopped: its model files failed to load or verify (%s)",
                worker.spec.kind,
                worker.spec.model_name,
                type(exc).__name__,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        try:
            for chunk in frames.encode(weights):
                stdin.write(chunk)
                await stdin.drain()
        finally:
            del weights

    async def _check_sandbox(
        self, worker: WorkerState, line: bytes, process: asyncio.subprocess.Process
    ) -> bytes:
        """Read the worker's sandbox report; in `require` mode stop a worker missing a feature.

        Returns the next line (READY), or nothing when the worker was stopped.
        """
        assert worker.confinement is not None and process.stdout is not None
        if not line.startswith(b"SANDBOX "):
            return line
        reported = line.decode("ascii", "replace").split(" ", 1)[1].strip()
        worker.sandbox = tuple(f for f in reported.split(",") if f)
        missing = sorted(worker.confinement.plan.features - set(worker.sandbox))
        if missing:
            log.warning("worker %s runs without: %s", worker.spec.kind, ", ".join(missing))
            if self.sandbox.policy.mode is SandboxMode.REQUIRE:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                return b""
        return await asyncio.wait_for(process.stdout.readline(), self.startup_timeout_s)

    def _identity_frames(self, spiffe_id: str) -> Iterator[bytes | bytearray]:
        """A fresh SVID for `spiffe_id`, its key and the CA certificate, as frames."""
        assert self._ca is not None
        svid = self._ca.issue(spiffe_id, self.svid_lifetime)
        pem = svid.cert_pem + svid.key.reveal_pem(EXPORT_KEY_MATERIAL)
        return frames.encode([("ca.pem", self._ca.cert_pem), ("svid.pem", pem)])

    async def _rotate(self, worker: WorkerState, stdin: asyncio.StreamWriter) -> None:
        """Send the worker a new SVID at each half of its lifetime, and whenever the CA changes.

        A CA rotation first adds the new CA to the trust bundle, then (at its
        activation) issues from it: each step reaches the worker within
        `CA_POLL_S`, with a fresh SVID and the bundle, so the worker trusts the
        gateway's next certificate before the gateway presents it.
        """
        assert worker.spiffe_id is not None and self._ca is not None
        while True:
            await self._renewal_due(self._ca.fingerprint())
            try:
                stdin.writelines(self._identity_frames(worker.spiffe_id))
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                return  # The worker is gone; `_keep_running` restarts it.
            worker.rotations += 1

    async def _renewal_due(self, seen: tuple[int, int]) -> None:
        """Return at half the SVID's lifetime, or sooner once the CA's fingerprint moves on."""
        assert self._ca is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.svid_lifetime.total_seconds() / 2
        while loop.time() < deadline and self._ca.fingerprint() == seen:
            await asyncio.sleep(min(CA_POLL_S, max(deadline - loop.time(), 0.0)))

    def _stop(self, worker: WorkerState) -> None:
        worker.ready = False
        if worker.task is not None:
            worker.task.cancel()
        if worker.process is not None and worker.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.terminate()
        task = asyncio.get_running_loop().create_task(self._retire(worker))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, worker: WorkerState) -> None:
        """Wait for a stopped worker to exit (killing it after 5 s), then free its sandbox."""
        if worker.process is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.process.wait(), 5)
            if worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker.process.wait(), 5)
            # Anything it forked is in its session's process group (and its cgroup).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.process.pid, signal.SIGKILL)
        if worker.confinement is not None:
            self.sandbox.release(worker.confinement)
        if self._ledger is not None:
            self._ledger.ended(worker.record)

    async def close(self) -> None:
        self._closing = True
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            self._stop(worker)
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._ledger is not None:
            self._ledger.close()
        shutil.rmtree(self._dir, ignore_errors=True)


async def _kill(process: asyncio.subprocess.Process | None) -> None:
    """Kill a worker process that is still running, and wait for it."""
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(process.wait(), 5)


def _empty(directory: Path) -> None:
    """Clear a worker's directory before each start: nothing carries over a restart."""
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
