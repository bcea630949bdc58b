"""A worker over its memory limit is killed and restarted; nobody else notices.

Two demo-chat deployments of different tenants run in sandboxes with a small memory
cgroup each.  On cue (SIGUSR1, `bulkhead.testing.hungry_worker`) one of them starts
eating memory; the kernel kills it at its limit and the supervisor restarts it.
Meanwhile its callers get 503 (through the gateway's own upstream client and error
table) and every call to the other deployment succeeds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from types import MappingProxyType
from typing import Any

import pytest

from bulkhead.domain import Tier
from bulkhead.errors import BulkheadError, status_of
from bulkhead.runtime import UpstreamClient, WorkerSpec, WorkerSupervisor
from bulkhead.runtime.sandbox import Feature, Limits, Sandbox, SandboxPolicy
from tests.support.sandbox import expected_features

pytestmark = pytest.mark.local

LIMIT = Limits(memory_bytes=768 << 20)
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
INCIDENT_S = 120.0


async def _call(supervisor: WorkerSupervisor, client: UpstreamClient, key: str) -> int:
    """One chat call as the gateway makes it; the HTTP status its caller would see."""
    try:
        await client.call(supervisor.target(key, 30), "/chat/completions", CHAT)
    except BulkheadError as exc:
        return status_of(exc)[0]
    return 200


async def _traffic(
    supervisor: WorkerSupervisor, client: UpstreamClient, key: str, seen: list[int], stop: Any
) -> None:
    while not stop.is_set():
        seen.append(await _call(supervisor, client, key))
        await asyncio.sleep(0.05)


def _worker(supervisor: WorkerSupervisor, key: str) -> dict[str, Any]:
    return next(s for s in supervisor.status() if s["deployment"] == key)


async def _incident(supervisor: WorkerSupervisor) -> tuple[list[int], list[int], dict[str, Any]]:
    victim = WorkerSpec(key="victim", kind="demo-chat", model_name="m", tenant="a")
    neighbour = WorkerSpec(key="neighbour", kind="demo-chat", model_name="m", tenant="b")
    supervisor.sync([victim, neighbour])
    assert await supervisor.wait_ready(180), supervisor.status()
    client, stop = UpstreamClient(), asyncio.Event()
    victim_seen: list[int] = []
    neighbour_seen: list[int] = []
    tasks = [
        asyncio.create_task(_traffic(supervisor, client, "victim", victim_seen, stop)),
        asyncio.create_task(_traffic(supervisor, client, "neighbour", neighbour_seen, stop)),
    ]
    try:
        await asyncio.sleep(1)
        os.kill(_worker(supervisor, "victim")["pid"], signal.SIGUSR1)
        deadline = time.monotonic() + INCIDENT_S
        while not (_worker(supervisor, "victim")["restarts"] and victim_seen[-1:] == [200]):
            assert time.monotonic() < deadline, supervisor.status()
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await client.close()
    return victim_seen, neighbour_seen, _worker(supervisor, "victim")


def test_a_worker_over_its_memory_limit_is_killed_and_restarted_alone() -> None:
    if Feature.CGROUP not in expected_features():
        pytest.skip("this machine has no cgroup memory controller the tests may use")
    policy = SandboxPolicy(limits=MappingProxyType(dict.fromkeys(Tier, LIMIT)))
    supervisor = WorkerSupervisor(
        sandbox=Sandbox(policy),
        worker_module="bulkhead.testing.hungry_worker",
        max_backoff_s=1.0,
    )

    async def main() -> tuple[list[int], list[int], dict[str, Any]]:
        try:
            return await _incident(supervisor)
        finally:
            await supervisor.close()

    victim_seen, neighbour_seen, victim = asyncio.run(main())
    assert victim["last_exit"] == "killed: over its memory limit", victim
    assert victim["restarts"] == 1 and victim["ready"], victim
    assert 503 in victim_seen, sorted(set(victim_seen))
    # A call in flight at the moment of the kill may see the connection drop (502).
    assert set(victim_seen) <= {200, 502, 503}, sorted(set(victim_seen))
    assert neighbour_seen and set(neighbour_seen) == {200}, sorted(set(neighbour_seen))
