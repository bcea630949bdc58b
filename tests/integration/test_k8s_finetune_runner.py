"""`KubeRunner`: a fine-tuning job as a Job, fed over an attach, against test doubles.

The API server is `RecordingKubeApi` (a recording test double, not a cluster): the Job the
runner applies is stored and checked (strictly valid, Pod Security `restricted`), and its
deletion recorded.  The kubelet and `pods/attach` are `LocalAttach`, a stand-in that makes
the Job's pod in the double and, on attach, runs the pod's own command (the sealed child,
`python -m bulkhead.finetune.stream`) as a local process with no sandbox, relaying its
stdin and stdout: so the real protocol and the real trainer run on a tiny random LLaMA.
Everything the child wrote to stdout is kept as the "container log" a node would hold,
and must be ciphertext.  Nothing here shows what a real cluster, kubelet or container
runtime does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from bulkhead.finetune.contract import Hyper, Outcome, RunLimits, TrainEvent, TrainInput
from bulkhead.k8s._client import Connection, KubeApi, connect
from bulkhead.k8s.checks import pod_security_restricted
from bulkhead.k8s.jobs import KubeRunHandle, KubeRunner, KubeRunnerConfig, job_path
from bulkhead.k8s.render.training import (
    COMMAND,
    CONTAINER,
    JOB_ID_ANNOTATION,
    JOB_LABEL,
    PYTHON,
    job_name,
)
from bulkhead.testing.kube_api import RecordingKubeApi
from tests.integration.test_finetune_runner import MARKER, TRAINING, VALIDATION
from tests.support.kube import TOKEN, kubeconfig, namespace
from tests.unit.k8s.catalog import SHARED, config

pytestmark = pytest.mark.local

GiB = 1 << 30


class LocalAttach:
    """The kubelet and `pods/attach`, stood in for: see the module's docstring.

    `end_reason` is what the pod's terminated state says when the process is killed
    (say "OOMKilled"); `tamper` flips a byte of the relayed stdout."""

    def __init__(self, api: RecordingKubeApi) -> None:
        self.api = api
        self.log = bytearray()
        self.end_reason: str | None = None
        self.tamper = False
        self.processes: list[asyncio.subprocess.Process] = []
        self.stdin_bytes = 0

    def make_pods(self) -> None:
        """A Running pod for each Job that has none (what the Job controller and the
        kubelet would do)."""
        for job in self.api.objects("Job"):
            meta, template = job["metadata"], job["spec"]["template"]
            name = meta["name"] + "-x7k2p"
            if self.api.find("Pod", name, meta["namespace"]) is None:
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": meta["namespace"],
                                 "labels": dict(template["metadata"]["labels"])},
                    "spec": template["spec"],
                    "status": {"phase": "Running", "containerStatuses": [
                        {"name": CONTAINER, "state": {"running": {}}}]},
                }  # fmt: skip
                self.api.put(pod, manager="kubelet")

    def set_terminated(self, namespace: str, pod: str, code: int, reason: str) -> None:
        found = self.api.find("Pod", pod, namespace)
        if found is None:
            return
        found["status"] = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [
                {"name": CONTAINER, "state": {"terminated": {"exitCode": code, "reason": reason}}}
            ],
        }
        self.api.put(found, manager="kubelet")

    async def attach(self, namespace: str, pod: str, container: str) -> Session:
        found = self.api.find("Pod", pod, namespace)
        assert found is not None and container == CONTAINER
        spec = found["spec"]["containers"][0]
        assert spec["stdin"] and spec["stdinOnce"] and not spec["tty"]
        assert spec["command"][0] == PYTHON and tuple(spec["command"]) == COMMAND
        env = {e["name"]: e["value"] for e in spec["env"]}
        env |= {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
        env.pop("TMPDIR", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable, *spec["command"][1:],
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=env, start_new_session=True,
        )  # fmt: skip
        self.processes.append(process)
        return Session(self, process, namespace, pod)


class Session:
    def __init__(
        self, owner: LocalAttach, process: asyncio.subprocess.Process, namespace: str, pod: str
    ) -> None:
        self.owner, self.process = owner, process
        assert process.stdin is not None
        self.stdin = process.stdin
        self.stdout = asyncio.StreamReader()
        self._relay = asyncio.get_running_loop().create_task(self._run(namespace, pod))

    async def _run(self, namespace: str, pod: str) -> None:
        assert self.process.stdout is not None
        while data := await self.process.stdout.read(1 << 16):
            self.owner.log += data
            if self.owner.tamper and len(self.owner.log) > 64:
                data = bytes([data[0] ^ 1]) + data[1:]
                self.owner.tamper = False
            self.stdout.feed_data(data)
        code = await self.process.wait()
        reason = self.owner.end_reason or ("Completed" if code == 0 else "Error")
        self.owner.set_terminated(namespace, pod, 128 + 9 if code < 0 else code, reason)
        self.stdout.feed_eof()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def end(self) -> None:
        self.kill()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self._relay, 5)


@pytest.fixture
def api() -> Iterator[RecordingKubeApi]:
    with RecordingKubeApi(token=TOKEN) as double:
        double.put(namespace("bh-acme-train", tenant="acme"))
        yield double


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    from tests.integration.test_model_import import save_tiny_llama

    directory = tmp_path_factory.mktemp("tiny")
    save_tiny_llama(directory)
    files = [(p.name, p.read_bytes()) for p in sorted(directory.iterdir()) if p.is_file()]
    return [(n, d) for n, d in files if n in {"config.json", "model.safetensors", "tokenizer.json"}]


def tiny_job(frames: list[tuple[str, bytes]], epochs: int = 1, wall: float = 300) -> TrainInput:
    hyper = Hyper(epochs=epochs, batch_size=2, lora_rank=4, max_seq_len=48)
    limits = RunLimits(memory_bytes=1 * GiB, wall_seconds=wall)
    return TrainInput(frames, TRAINING, VALIDATION, hyper, limits)


def make_runner(api: RecordingKubeApi, tmp: Path, **kw: Any) -> tuple[KubeRunner, LocalAttach]:
    client = KubeApi(connect(Connection(kubeconfig=str(kubeconfig(tmp / "kc", api)))))
    transport = LocalAttach(api)
    cfg = KubeRunnerConfig(k8s=config(), poll_s=0.05, exit_wait_s=5)
    return KubeRunner(client, transport, lambda _t: SHARED, cfg, **kw), transport


async def kubelet(transport: LocalAttach, handle: KubeRunHandle) -> None:
    """Make the pod of each Job, as the Job controller and the kubelet would."""
    while True:
        await asyncio.to_thread(transport.make_pods)
        await asyncio.sleep(0.05)


async def follow(
    runner: KubeRunner, transport: LocalAttach, job: TrainInput, **kw: Any
) -> tuple[KubeRunHandle, list[TrainEvent], Outcome]:
    handle = await runner.start("ftjob-k8s-1", "ten_acme", job)
    pods = asyncio.get_running_loop().create_task(kubelet(transport, handle))
    try:
        events = [e async for e in handle.events()]
        return handle, events, await handle.outcome()
    finally:
        pods.cancel()


def the_job(api: RecordingKubeApi) -> dict[str, Any]:
    found = api.find("Job", job_name("ftjob-k8s-1"), "bh-acme-train")
    assert found is not None
    return found


def deleted_foreground(api: RecordingKubeApi) -> bool:
    return any(
        r.method == "DELETE"
        and r.path.endswith("/jobs/" + job_name("ftjob-k8s-1"))
        and r.query.get("propagationPolicy") == ["Foreground"]
        for r in api.requests
    )


def test_a_job_trains_over_the_attach_and_its_stdout_is_sealed(
    api: RecordingKubeApi, tmp_path: Path, tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner, transport = make_runner(api, tmp_path)
    handle, events, outcome = asyncio.run(follow(runner, transport, tiny_job(tiny_llama)))
    assert outcome.succeeded, outcome
    assert {name for name, _ in outcome.adapter} == {
        "adapter_config.json", "adapter_model.safetensors"
    }  # fmt: skip
    assert [e for e in events if e.train_loss is not None]
    # The Job went in by a create (the Role grants no patch), under its own field manager.
    applied = [r for r in api.requests if r.method in {"POST", "PATCH"} and "/jobs" in r.path]
    assert [r.method for r in applied] == ["POST"]
    assert applied[0].path == "/apis/batch/v1/namespaces/bh-acme-train/jobs"
    assert applied[0].query["fieldManager"] == ["bulkhead-finetune"]
    job = applied[0].body
    for version in ("1.33.0", "1.35.0"):
        kubernetes_validate.validate(job, version, strict=True)
    assert pod_security_restricted([job], require_apparmor=True) == []
    assert job["metadata"]["labels"][JOB_LABEL] == handle.name
    # After the end the Job is deleted, in the foreground (its pod with it).
    assert deleted_foreground(api)
    # The "container log": ciphertext only, no event, no example, no adapter file name.
    log = bytes(transport.log)
    assert len(log) > 1000
    for clear in (MARKER.encode(), b'"kind"', b"adapter_config", b"safetensors", b"loss"):
        assert clear not in log


@pytest.mark.serial
def test_cancel_deletes_the_job_and_ends_within_5_s(
    api: RecordingKubeApi, tmp_path: Path, tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner, transport = make_runner(api, tmp_path)

    async def main() -> tuple[float, Outcome]:
        handle = await runner.start("ftjob-k8s-1", "ten_acme", tiny_job(tiny_llama, epochs=5))
        pods = asyncio.get_running_loop().create_task(kubelet(transport, handle))
        async for event in handle.events():
            if event.kind == "metrics":
                break
        started = time.monotonic()
        await handle.cancel()
        took = time.monotonic() - started
        pods.cancel()
        return took, await handle.outcome()

    took, outcome = asyncio.run(main())
    assert took < 5.0
    assert outcome.reason == "cancelled", outcome
    assert deleted_foreground(api)
    assert all(p.returncode is not None for p in transport.processes)


def test_an_oom_killed_pod_fails_the_job_as_oom(
    api: RecordingKubeApi, tmp_path: Path, tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner, transport = make_runner(api, tmp_path)
    transport.end_reason = "OOMKilled"

    async def main() -> Outcome:
        handle = await runner.start("ftjob-k8s-1", "ten_acme", tiny_job(tiny_llama, epochs=5))
        pods = asyncio.get_running_loop().create_task(kubelet(transport, handle))
        async for event in handle.events():
            if event.text == "training":
                os.killpg(transport.processes[0].pid, signal.SIGKILL)  # the OOM killer
        pods.cancel()
        return await handle.outcome()

    outcome = asyncio.run(main())
    assert outcome.reason == "oom", outcome


def test_the_jobs_deadline_fails_it_as_timeout(
    api: RecordingKubeApi, tmp_path: Path, tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner, transport = make_runner(api, tmp_path)

    async def main() -> Outcome:
        handle = await runner.start("ftjob-k8s-1", "ten_acme", tiny_job(tiny_llama, epochs=5))
        pods = asyncio.get_running_loop().create_task(kubelet(transport, handle))
        async for event in handle.events():
            if event.text == "training":
                # The Job controller at activeDeadlineSeconds: the Job fails, its pod is killed.
                job = the_job(api)
                failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
                job["status"] = {"conditions": [failed]}
                api.put(job, manager="kube-controller-manager")
                os.killpg(transport.processes[0].pid, signal.SIGKILL)
        pods.cancel()
        return await handle.outcome()

    outcome = asyncio.run(main())
    assert outcome.reason == "timeout", outcome


def test_a_nan_loss_reported_over_the_attach_fails_the_job(
    api: RecordingKubeApi, tmp_path: Path, tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner, transport = make_runner(api, tmp_path, nan_at_step=2)
    _, _, outcome = asyncio.run(follow(runner, transport, tiny_job(tiny_llama)))
    assert outcome.reason == "nan_loss", outcome


def test_a_tampered_stdout_record_is_a_crash_not_an_adapter(
    api: RecordingKubeApi, tmp_path: Path, tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner, transport = make_runner(api, tmp_path)
    transport.tamper = True
    _, _, outcome = asyncio.run(follow(runner, transport, tiny_job(tiny_llama)))
    assert outcome.reason == "crashed" and not outcome.adapter, outcome
    assert deleted_foreground(api)


def test_an_attach_refused_ends_the_job_as_crashed_and_deletes_it(
    api: RecordingKubeApi, tmp_path: Path, tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner, transport = make_runner(api, tmp_path)

    async def refused(namespace: str, pod: str, container: str) -> Session:
        raise PermissionError("pods/attach is forbidden")

    transport.attach = refused  # type: ignore[method-assign]
    _, events, outcome = asyncio.run(follow(runner, transport, tiny_job(tiny_llama)))
    assert outcome.reason == "crashed" and not outcome.adapter, outcome
    assert events[-1].text == "failed: crashed"
    assert deleted_foreground(api)


def test_a_job_name_already_taken_is_refused_not_taken_over(
    api: RecordingKubeApi, tmp_path: Path, tiny_llama: list[tuple[str, bytes]]
) -> None:
    from bulkhead.k8s._client import ClusterError

    where = {"name": job_name("ftjob-k8s-1"), "namespace": "bh-acme-train"}
    theirs = {"apiVersion": "batch/v1", "kind": "Job", "metadata": where}
    api.put(theirs)
    runner, _ = make_runner(api, tmp_path)
    with pytest.raises(ClusterError) as caught:
        asyncio.run(runner.start("ftjob-k8s-1", "ten_acme", tiny_job(tiny_llama)))
    assert caught.value.status == 409
    assert the_job(api) == {**theirs, "metadata": the_job(api)["metadata"]}


def test_the_jobs_own_job_still_being_deleted_is_waited_for_then_made_again(
    api: RecordingKubeApi, tmp_path: Path, tiny_llama: list[tuple[str, bytes]]
) -> None:
    """A replica that shut down deleted the Job of its run (foreground: it lingers while its
    pod ends) and requeued the job; the replica that claims it creates the Job again."""
    name = job_name("ftjob-k8s-1")
    meta = {"name": name, "namespace": "bh-acme-train"}
    meta |= {"annotations": {JOB_ID_ANNOTATION: "ftjob-k8s-1"}}
    meta |= {"deletionTimestamp": "2026-12-07T00:00:00Z"}
    api.put({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta})
    runner, _ = make_runner(api, tmp_path)
    gone = threading.Timer(0.3, runner.api.request, ("DELETE", job_path("bh-acme-train", name)))
    gone.start()

    async def start_then_cancel() -> dict[str, Any]:
        handle = await runner.start("ftjob-k8s-1", "ten_acme", tiny_job(tiny_llama))
        made = the_job(api)
        await handle.cancel()
        return made

    made = asyncio.run(start_then_cancel())
    gone.join()
    assert "deletionTimestamp" not in made["metadata"]
    assert made["metadata"]["annotations"][JOB_ID_ANNOTATION] == "ftjob-k8s-1"
    posts = [r for r in api.requests if r.method == "POST" and r.path.endswith("/jobs")]
    assert len(posts) >= 2  # refused (409) while the old one lingered, then made
