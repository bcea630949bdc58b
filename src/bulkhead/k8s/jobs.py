"""`KubeRunner`: the fine-tuning runner on Kubernetes (`contract.Runner` / `RunHandle`).

`start` renders the job as a Job in the tenant's training namespace
(`render.training.render_training_job`) and creates it (`POST`, field manager
`bulkhead-finetune`: a Job of that name already there is a 409, never taken over).
The handle waits for the Job's pod to run, attaches to its container's stdin and
stdout through the API server (`pods/attach`; the transport is injected:
`WebSocketAttach` in production) and from there does exactly what the local runner
does (`finetune.stream.StreamRun`): the header and the frames of examples and base
weights go in over stdin, the events and the adapter come back over stdout, sealed
under a key that only the gateway and the pod's stdin ever held (the runtime copies
stdout into the node's container log).  Nothing crosses the pod network; the pod
reaches nothing.

Stopping (cancel, the wall-clock limit, a broken stream) deletes the Job with
`propagationPolicy=Foreground` and drops the attach session; the pod's
`terminationGracePeriodSeconds` (2 s) makes the kubelet SIGKILL the child soon after, so
a cancel has ended the job within 5 s.  The outcome comes from the stream, judged with the
pod's terminated state: `OOMKilled` -> "oom", the Job's `DeadlineExceeded` -> "timeout".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bulkhead.crypto.channel import new_key
from bulkhead.finetune.contract import FailReason, Outcome, RunLimits, TrainInput
from bulkhead.finetune.stream import StreamRun, Writer, open_sealed, seal_line, stdin_header
from bulkhead.k8s._client import ClusterError
from bulkhead.k8s.config import K8sConfig
from bulkhead.k8s.render.names import train_namespace
from bulkhead.k8s.render.training import (
    CONTAINER,
    JOB_ID_ANNOTATION,
    JOB_LABEL,
    job_name,
    render_training_job,
)
from bulkhead.k8s.render.views import TenantView

log = logging.getLogger("bulkhead.finetune")

FIELD_MANAGER = "bulkhead-finetune"


class Api(Protocol):
    """What the runner needs of `_client.KubeApi` (blocking; run in a thread)."""

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Any = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]: ...


class AttachSession(Protocol):
    """One attach to a container: its stdin and its (raw, sealed) stdout."""

    @property
    def stdin(self) -> Writer: ...

    @property
    def stdout(self) -> asyncio.StreamReader: ...

    async def end(self) -> None:
        """Drop the session (the pod's stdin closes with it: `stdinOnce`)."""
        ...


class AttachTransport(Protocol):
    """Opens `pods/attach` sessions (stdin and stdout, no tty)."""

    async def attach(self, namespace: str, pod: str, container: str) -> AttachSession: ...


@dataclass(frozen=True, slots=True)
class KubeRunnerConfig:
    """The cluster's facts (`k8s`), the default limits, how often the pod is looked at,
    how long a stop waits for the pod to end, and whether jobs ask for a GPU."""

    k8s: K8sConfig = field(default_factory=K8sConfig)
    limits: RunLimits = field(default_factory=RunLimits)
    poll_s: float = 0.5
    stop_wait_s: float = 4.0
    exit_wait_s: float = 30.0
    accelerator: bool = False


class KubeRunner:
    """Starts each job as a Job in the tenant's training namespace; implements `Runner`.

    `tenants(tenant_id)` gives the tenant as the renderer sees it (name, tier, limits)."""

    def __init__(
        self,
        api: Api,
        transport: AttachTransport,
        tenants: Callable[[str], TenantView],
        config: KubeRunnerConfig | None = None,
        *,
        nan_at_step: int | None = None,
    ) -> None:
        """`nan_at_step` makes every job's loss NaN from that step on: for tests only."""
        self.api = api
        self.transport = transport
        self.tenants = tenants
        self.config = config or KubeRunnerConfig()
        self._nan_at_step = nan_at_step
        self._handles: set[KubeRunHandle] = set()

    async def start(self, job_id: str, tenant_id: str, job: TrainInput) -> KubeRunHandle:
        tenant = self.tenants(tenant_id)
        limits = job.limits or self.config.limits
        obj = render_training_job(
            tenant, job_id, limits, self.config.k8s, accelerator=self.config.accelerator
        )
        # A create, not an apply: the Role grants `create` on jobs and no `patch`, and a
        # Job of that name already there (anyone's) is a 409, never taken over.
        await self._create(obj, job_id)
        key = new_key()
        handle = KubeRunHandle(self, job_id, tenant.name, limits)
        handle._begin_with(key, seal_line(key) + stdin_header(job, self._nan_at_step), job)
        self._handles.add(handle)
        log.info("fine-tuning job %s of %s started as Job %s", job_id, tenant_id, handle.name)
        return handle

    async def _create(self, obj: dict[str, Any], job_id: str) -> None:
        """POST the Job.  A 409 for this job's own Job still being deleted (the run a replica
        stopped at its shutdown; the job was requeued and claimed again) waits, bounded by
        `exit_wait_s`, for it to go, then creates again; any other 409 stands."""
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        until = time.monotonic() + self.config.exit_wait_s
        while True:
            try:
                await asyncio.to_thread(
                    self.api.request,
                    "POST",
                    f"/apis/batch/v1/namespaces/{namespace}/jobs",
                    query=[("fieldManager", FIELD_MANAGER)],
                    body=obj,
                )
                return
            except ClusterError as exc:
                if exc.status != 409 or time.monotonic() >= until:
                    raise
                if not await self._leaving(job_path(namespace, name), job_id):
                    raise
            await asyncio.sleep(self.config.poll_s)

    async def _leaving(self, path: str, job_id: str) -> bool:
        """Whether the Job at `path` is this job's own and being deleted (or gone already)."""
        try:
            _, found = await asyncio.to_thread(self.api.request, "GET", path)
        except ClusterError as exc:
            return exc.status == 404
        meta = found.get("metadata") or {}
        ours = (meta.get("annotations") or {}).get(JOB_ID_ANNOTATION) == job_id
        return ours and bool(meta.get("deletionTimestamp"))

    async def close(self) -> None:
        """Cancel every running job."""
        await asyncio.gather(*(h.cancel() for h in list(self._handles)), return_exceptions=True)


class KubeRunHandle(StreamRun):
    """One job's Job and pod; the protocol is `StreamRun`'s."""

    def __init__(self, runner: KubeRunner, job_id: str, tenant: str, limits: RunLimits) -> None:
        super().__init__(job_id, limits)
        self._runner = runner
        self.name = job_name(job_id)
        self.namespace = train_namespace(tenant)
        self.pod: str | None = None
        self._key = b""
        self._session: AttachSession | None = None
        self._oom_killed = False
        self._deadline = False
        self._deleted = False

    def _begin_with(self, key: bytes, header: bytes, job: TrainInput) -> None:
        self._key = key
        self._begin(header, job)

    async def _api(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        _, body = await asyncio.to_thread(self._runner.api.request, method, path, **kw)
        return body

    async def _pods(self) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        body = await self._api("GET", path, query=[("labelSelector", f"{JOB_LABEL}={self.name}")])
        return [p for p in body.get("items") or () if isinstance(p, dict)]

    async def _connect(self) -> tuple[Writer, asyncio.StreamReader]:
        """Wait for the pod to run, attach, and open the sealed stdout.  A pod that ended
        before it could be attached to gives an empty stream (its state says why)."""
        while True:
            if self._stopping is not None:
                return _Closed(), _ended()
            try:
                pods = await self._pods()
            except ClusterError as exc:  # a passing API error: look again
                log.warning("fine-tuning job %s: listing its pod failed: %s", self.job_id, exc)
                pods = []
            for pod in pods:
                phase = (pod.get("status") or {}).get("phase")
                if phase in {"Running", "Succeeded", "Failed"}:
                    self.pod = str(pod["metadata"]["name"])
                if phase == "Running":
                    return await self._attach()
                if phase in {"Succeeded", "Failed"}:
                    return _Closed(), _ended()
            await asyncio.sleep(self._runner.config.poll_s)

    async def _attach(self) -> tuple[Writer, asyncio.StreamReader]:
        """Attach to the running pod; an attach refused or broken ends the job (crashed)."""
        try:
            session = await self._runner.transport.attach(self.namespace, str(self.pod), CONTAINER)
        except Exception as exc:  # whatever the transport raised, the job ends
            log.warning("fine-tuning job %s: attach failed (%s)", self.job_id, type(exc).__name__)
            await self._abort()
            return _Closed(), _ended()
        self._session = session
        return session.stdin, await open_sealed(session.stdout, self._key)

    async def _delete_job(self) -> None:
        if self._deleted:
            return
        self._deleted = True
        path = job_path(self.namespace, self.name)
        query = [("propagationPolicy", "Foreground")]
        try:
            await self._api("DELETE", path, query=query)
        except ClusterError as exc:
            if exc.status != 404:
                log.warning("fine-tuning job %s: deleting its Job failed: %s", self.job_id, exc)

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.end()

    async def _stop(self, reason: FailReason) -> None:
        """Delete the Job, drop the session and wait (bounded) for the pod to end."""
        if self._stopping is None:
            self._stopping = reason
        await self._delete_job()
        await self._drop_session()
        until = time.monotonic() + self._runner.config.stop_wait_s
        while time.monotonic() < until and not await self._pod_ended():
            await asyncio.sleep(min(self._runner.config.poll_s, 0.2))

    async def _abort(self) -> None:
        await self._delete_job()
        await self._drop_session()

    async def _pod_ended(self) -> bool:
        with contextlib.suppress(ClusterError):
            pods = await self._pods()
            return not pods or all(_terminated(p) is not None for p in pods)
        return False

    async def _exit_code(self) -> int | None:
        """The container's exit code from the pod's terminated state (None: no pod, or it
        did not end in time); `OOMKilled` and the Job's `DeadlineExceeded` are noted."""
        until = time.monotonic() + self._runner.config.exit_wait_s
        while True:
            with contextlib.suppress(ClusterError):
                await self._read_job()
                for pod in await self._pods():
                    state = _terminated(pod)
                    if state is not None:
                        self._oom_killed = self._oom_killed or state.get("reason") == "OOMKilled"
                        code = state.get("exitCode")
                        return code if isinstance(code, int) else None
            if time.monotonic() >= until or self._deleted:
                return None
            await asyncio.sleep(self._runner.config.poll_s)

    async def _read_job(self) -> None:
        try:
            body = await self._api("GET", job_path(self.namespace, self.name))
        except ClusterError:
            return
        for condition in (body.get("status") or {}).get("conditions") or ():
            if condition.get("reason") == "DeadlineExceeded" and condition.get("status") == "True":
                self._deadline = True

    async def _finish(self) -> None:
        """Nothing of the job stays: the Job (and with it the pod) is deleted."""
        await self._drop_session()
        await self._delete_job()
        self._runner._handles.discard(self)

    def _oom(self) -> bool:
        return self._oom_killed

    def _judge(self, outcome: Outcome) -> Outcome:
        judged = super()._judge(outcome)
        if self._deadline and not judged.succeeded and judged.reason != "oom":
            return self._failed("timeout", "the job ran past its time limit")
        return judged


def job_path(namespace: str, name: str) -> str:
    """A Job's REST path (Jobs are not among the kinds `cluster` applies and prunes)."""
    return f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The training container's terminated state, or None while it has none."""
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") == CONTAINER:
            state = (status.get("state") or {}).get("terminated")
            return state if isinstance(state, dict) else None
    return None


class _Closed:
    """The stdin of a pod that has already ended."""

    def write(self, data: bytes | bytearray) -> None:
        raise BrokenPipeError

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


def _ended() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_eof()
    return reader


class WebSocketAttach:
    """`pods/attach` over the API server's WebSocket stream protocol, with the official
    client (`kubernetes.stream`, binary frames; channel 0 stdin, 1 stdout).  The client is
    blocking: a thread per session moves stdout into an asyncio reader, and stdin is sent
    from a worker thread at each `drain`.

    Not exercised against a cluster here (none can run on these machines): the tests drive
    `KubeRunner` through a transport that runs the same child as a local process."""

    def __init__(self, api_client: Any, *, chunk: int = 1 << 20) -> None:
        self.api_client = api_client
        self.chunk = chunk

    async def attach(self, namespace: str, pod: str, container: str) -> AttachSession:
        from kubernetes.client import CoreV1Api
        from kubernetes.stream import stream

        core = CoreV1Api(self.api_client)
        ws = await asyncio.to_thread(
            stream,
            core.connect_get_namespaced_pod_attach,
            pod,
            namespace,
            container=container,
            stdin=True,
            stdout=True,
            stderr=False,
            tty=False,
            binary=True,
            _preload_content=False,
        )
        return _WsSession(ws, asyncio.get_running_loop(), self.chunk)


class _WsSession:
    def __init__(self, ws: Any, loop: asyncio.AbstractEventLoop, chunk: int) -> None:
        self._ws = ws
        self._loop = loop
        self._chunk = chunk
        self._pending: list[bytes] = []
        self.stdout = asyncio.StreamReader(limit=1 << 20)
        self.stdin: Writer = self
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while self._ws.is_open():
                self._ws.update(timeout=0.2)
                data = self._ws.read_channel(1)
                if data:
                    self._loop.call_soon_threadsafe(self.stdout.feed_data, bytes(data))
        except Exception:  # the session broke: the follower sees a cut stream
            log.warning("the attach session to a training pod broke")
        finally:
            self._loop.call_soon_threadsafe(self.stdout.feed_eof)

    def write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        for start in range(0, len(view), self._chunk):
            self._pending.append(bytes(view[start : start + self._chunk]))

    async def drain(self) -> None:
        while self._pending:
            await asyncio.to_thread(self._ws.write_stdin, self._pending.pop(0))

    def close(self) -> None:
        """Close stdin (v5 protocol; the child needs no end of file: its frames are counted)."""
        with contextlib.suppress(Exception):
            self._ws.close_channel(0)

    async def end(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._ws.close)
