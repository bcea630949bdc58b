"""The supervisor starts real workers in their sandbox and reports what is in force.

These start real demo-chat workers (torch on the CPU), like `test_worker.py`, and fail
rather than skip where the `local` extra is missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from tests.support.sandbox import expected_features

from bulkhead.domain import Tier
from bulkhead.errors import ConfigError, Unavailable
from bulkhead.runtime import WorkerSpec, WorkerSupervisor
from bulkhead.runtime.sandbox import Feature, Sandbox, SandboxMode, SandboxPolicy
from bulkhead.runtime.sandbox._enter import EXIT_REFUSED

pytestmark = pytest.mark.local

T = TypeVar("T")
READY_S = 120.0
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def _run(body: Callable[[WorkerSupervisor], Awaitable[T]], supervisor: WorkerSupervisor) -> T:
    async def main() -> T:
        try:
            return await body(supervisor)
        finally:
            await supervisor.close()

    return asyncio.run(main())


async def _chat(supervisor: WorkerSupervisor, key: str) -> dict[str, Any]:
    target = supervisor.target(key, 30)
    assert target.unix_socket is not None
    connector = aiohttp.UnixConnector(path=target.unix_socket)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            "http://worker/v1/chat/completions", json=CHAT, headers=target.headers
        ) as response,
    ):
        assert response.status == 200, await response.text()
        reply: dict[str, Any] = await response.json()
        return reply


def _memory_cgroup(pid: int) -> Path | None:
    """The directory of the memory cgroup `pid` runs in, if it is one of a worker's own."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") and Path(path).name.startswith("bulkhead-"):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    return None


def test_a_real_worker_runs_in_its_sandbox_and_reports_it() -> None:
    supervisor = WorkerSupervisor()
    spec = WorkerSpec(key="d1", kind="demo-chat", model_name="m", tenant="t1", tier=Tier.MIG)

    cgroups: list[Path | None] = []

    async def body(sup: WorkerSupervisor) -> tuple[dict[str, Any], dict[str, object], int]:
        sup.sync([spec])
        assert await sup.wait_ready(READY_S), sup.status()
        reply = await _chat(sup, "d1")
        (status,) = sup.status()
        pid = status["pid"]
        assert isinstance(pid, int)
        cgroups.append(_memory_cgroup(pid))
        return reply, status, os.stat(f"/proc/{pid}/status").st_uid

    reply, status, proc_owner = _run(body, supervisor)
    assert reply["choices"][0]["message"]["content"] is not None
    expected = {str(f) for f in expected_features()}
    assert set(status["sandbox"]) >= expected, status  # type: ignore[arg-type]
    missing = {m.split(":")[0] for m in status["sandbox_missing"]}  # type: ignore[attr-defined]
    assert not missing & expected, status
    assert status["tenant"] == "t1" and status["tier"] == "mig" and status["state"] == "ready"
    assert status["device"] is None
    if Feature.UID in expected_features():
        assert isinstance(status["uid"], int) and status["uid"] >= 910_000
    if Feature.NO_DUMP in expected_features():
        assert proc_owner == 0  # a non-dumpable process's /proc files belong to root
    # Its own cgroup went with it (only its own: another Bulkhead on this machine has others).
    (cgroup,) = cgroups
    if Feature.CGROUP in expected_features():
        assert cgroup is not None, status
    assert cgroup is None or not cgroup.exists(), cgroup
    assert not supervisor._dir.exists()  # nor any worker's directory


def test_off_starts_the_worker_as_before() -> None:
    supervisor = WorkerSupervisor(sandbox=Sandbox(SandboxPolicy(mode=SandboxMode.OFF)))

    async def body(sup: WorkerSupervisor) -> dict[str, object]:
        sup.sync([WorkerSpec(key="d1", kind="demo-chat", model_name="m")])
        assert await sup.wait_ready(READY_S), sup.status()
        await _chat(sup, "d1")
        return sup.status()[0]

    status = _run(body, supervisor)
    assert status["sandbox"] == [] and status["uid"] is None
    assert len(status["sandbox_missing"]) == 0  # type: ignore[arg-type]


def test_require_keeps_a_worker_down_when_its_sandbox_breaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if set(expected_features()) != set(Feature):
        pytest.skip("require mode needs every feature on this machine")
    sandbox = Sandbox(SandboxPolicy(mode=SandboxMode.REQUIRE))
    confine = sandbox.confine

    def broken(*args: Any, **kwargs: Any) -> Any:
        confinement = confine(*args, **kwargs)
        confinement.plan = dataclasses.replace(confinement.plan, cgroup_procs="/nonexistent")
        return confinement

    monkeypatch.setattr(sandbox, "confine", broken)
    supervisor = WorkerSupervisor(sandbox=sandbox, max_backoff_s=0.2)

    async def body(sup: WorkerSupervisor) -> dict[str, object]:
        sup.sync([WorkerSpec(key="d1", kind="demo-chat", model_name="m")])
        for _ in range(200):
            if sup.status()[0]["restarts"]:
                break
            await asyncio.sleep(0.1)
        with pytest.raises(Unavailable):
            sup.target("d1", 5)
        return sup.status()[0]

    status = _run(body, supervisor)
    assert status["ready"] is False and status["state"] == "restarting"
    assert status["last_exit"] == f"exit {EXIT_REFUSED}"


def test_a_device_assignment_sets_only_device_variables() -> None:
    spec = WorkerSpec(
        key="d1",
        kind="demo-chat",
        model_name="m",
        device_env={"CUDA_VISIBLE_DEVICES": "MIG-1234", "BULKHEAD_GPU_MEMORY_FRACTION": "0.5"},
    )
    assert spec.device_env["CUDA_VISIBLE_DEVICES"] == "MIG-1234"
    with pytest.raises(ConfigError, match="LD_PRELOAD"):
        WorkerSpec(key="d1", kind="demo-chat", model_name="m", device_env={"LD_PRELOAD": "x"})


def test_the_status_names_the_device_and_the_tier() -> None:
    supervisor = WorkerSupervisor(sandbox=Sandbox(SandboxPolicy(mode=SandboxMode.OFF)))
    spec = WorkerSpec(
        key="d1",
        kind="demo-chat",
        model_name="m",
        tier=Tier.DEDICATED,
        device_env={"CUDA_VISIBLE_DEVICES": "GPU-abcd"},
    )

    async def body(sup: WorkerSupervisor) -> dict[str, object]:
        sup.sync([spec])
        return sup.status()[0]

    status = _run(body, supervisor)
    assert status["device"] == "GPU-abcd" and status["tier"] == "dedicated"
    assert status["state"] == "starting"
    json.dumps(status)  # the admin API serialises it as is
