"""Two replicas on one PostgreSQL database share one fine-tuning queue (the lease).

Replicas A and B are two gateways with their own fake runner (and so their
own `FineTuning` service and scheduler), polling every `POLL_MS` under a
lease of `LEASE_MS`.  A job runs exactly once, on whichever replica claims
it; a tenant's `fine_tuning_concurrency` holds across both; a replica that
stops heartbeating has its job failed by the other once the lease ends, never
before; a cancel through either replica stops the run where it is, within
the issue's 5 s.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from bulkhead.store import repo
from bulkhead.testing.fake_runner import FakeRunner
from tests.support.gateway import GatewayThread
from tests.support.postgres import app_url, create_database, sqlalchemy_url
from tests.support.softhsm import SoftHsm

POLL_MS, LEASE_MS = 100, 1500
BASE = "smol-lease"
EXAMPLE = {
    "messages": [
        {"role": "user", "content": "Colour of the sky?"},
        {"role": "assistant", "content": "Blue."},
    ]
}
GOOD = b"\n".join(orjson.dumps(EXAMPLE) for _ in range(3)) + b"\n"


class Replica:
    def __init__(self, data: Path, admin: str, hsm: SoftHsm) -> None:
        self.runner = FakeRunner()
        env = {
            # One HSM for both: a file uploaded through one replica opens on the other (the
            # embedded KMS keeps its keys in one process).
            "BULKHEAD_KMS": "pkcs11",
            "BULKHEAD_PKCS11_MODULE": hsm.module_path,
            "BULKHEAD_PKCS11_TOKEN": hsm.label,
            "BULKHEAD_PKCS11_PIN": hsm.pin,
            "BULKHEAD_FINE_TUNING_JOBS": "2",
            "BULKHEAD_FINE_TUNING_POLL_MS": str(POLL_MS),
            "BULKHEAD_FINE_TUNING_LEASE_MS": str(LEASE_MS),
        }
        url, admin_sa = sqlalchemy_url(app_url(admin)), sqlalchemy_url(admin)
        self.gw = GatewayThread(
            data, url, admin_url=admin_sa, env=env, fine_tuning_runner=self.runner
        ).start()

    def on_loop(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a coroutine of this replica's fine-tuning service on its event loop."""
        service = self.gw.app.fine_tuning
        assert service is not None and service.lease.loop is not None
        asyncio.run_coroutine_threadsafe(make(), service.lease.loop).result(10)


class Fleet:
    def __init__(self, a: Replica, b: Replica) -> None:
        self.a, self.b = a, b
        self.keys: dict[str, str] = {}

    @property
    def replicas(self) -> tuple[Replica, Replica]:
        return self.a, self.b

    def tenant(self, name: str, **limits: int) -> str:
        gw = self.a.gw
        gw.tenant(name)
        gw.must("POST", f"/admin/v1/models/{BASE}/grants", {"tenant": name})
        if limits:
            with gw.app.db.platform_transaction() as session:
                repo.set_tenant_limits(session, name, limits)
            for r in self.replicas:
                r.gw.app.catalog.reload()
        self.keys[name] = gw.key(name, role="model_developer")
        tid = gw.must("GET", f"/admin/v1/tenants/{name}")["id"]
        until(lambda: all(known(r, tid, limits) for r in self.replicas))
        # The key was made on replica A: B knows it once its catalog has caught up.
        key = self.keys[name]
        until(lambda: all(r.gw.call("GET", "/v1/models", key).status == 200 for r in self.replicas))
        return key

    def job(self, name: str, via: Replica) -> str:
        key = self.keys[name]
        body = {"model": BASE, "training_file": upload(via.gw, key)}
        made = via.gw.call("POST", "/v1/fine_tuning/jobs", key, body)
        assert made.status == 200, made.body
        return str(made.body["id"])

    def status(self, name: str, job_id: str, via: Replica | None = None) -> str:
        got = (via or self.a).gw.call("GET", f"/v1/fine_tuning/jobs/{job_id}", self.keys[name])
        assert got.status == 200, got.body
        return str(got.body["status"])

    def where(self, job_id: str, limit_s: float = 10.0) -> Replica:
        """The replica that started the job (waits for one to)."""
        until(lambda: any(job_id in r.runner.handles for r in self.replicas), limit_s)
        found = [r for r in self.replicas if job_id in r.runner.handles]
        assert len(found) == 1, "a job ran on both replicas"
        return found[0]

    def other(self, replica: Replica) -> Replica:
        return self.b if replica is self.a else self.a

    def running(self) -> list[str]:
        return [j for r in self.replicas for j in r.runner.running()]


def known(replica: Replica, tenant_id: str, limits: dict[str, int]) -> bool:
    """Whether the replica's catalog has the tenant, with these limits."""
    tenant = replica.gw.app.catalog.snapshot.tenants.get(tenant_id)
    return tenant is not None and all(tenant.quotas.get(k) == v for k, v in limits.items())


def upload(gw: GatewayThread, key: str) -> str:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)
    made = client.files.create(file=("t.jsonl", io.BytesIO(GOOD)), purpose="fine-tune")
    return str(made.id)


def until(holds: Callable[[], bool], limit_s: float = 10.0) -> float:
    started = time.monotonic()
    while not holds():
        assert time.monotonic() - started < limit_s, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str, softhsm: SoftHsm
) -> Iterator[Fleet]:
    admin = create_database(pg_admin_url, "bulkhead_ft_lease")
    data = tmp_path_factory.mktemp("lease") / "data"
    a, b = Replica(data, admin, softhsm), Replica(data, admin, softhsm)
    a.gw.must("POST", "/admin/v1/models", {"name": BASE, "worker": "smollm2-135m"})
    yield Fleet(a, b)
    for r in (a, b):
        r.gw.stop()


def test_each_job_runs_exactly_once_on_either_replica(fleet: Fleet) -> None:
    for name in ("once-x", "once-y"):
        fleet.tenant(name, fine_tuning_concurrency=2)
    made = [fleet.job(n, via) for n in ("once-x", "once-y") for via in fleet.replicas]
    made += [fleet.job("once-x", fleet.a) for _ in range(2)]
    # Two tenants of two jobs each at once fill both replicas' two slots: both must claim,
    # however the polls interleave (released one by one, a quick replica could take them all).
    until(lambda: len(set(fleet.running())) == 4)
    seen: set[str] = set()
    while len(seen) < len(made):
        until(lambda: bool(set(fleet.running()) - seen))
        for job_id in set(fleet.running()) - seen:
            fleet.where(job_id).runner.succeed(job_id)
            seen.add(job_id)
    ran_a, ran_b = set(fleet.a.runner.handles), set(fleet.b.runner.handles)
    assert set(made) <= ran_a | ran_b and not (ran_a & ran_b)
    assert ran_a & set(made) and ran_b & set(made), "both replicas should have claimed jobs"
    for name in ("once-x", "once-y"):
        until(lambda name=name: statuses(fleet, name) == {"succeeded"})  # type: ignore[misc]


def statuses(fleet: Fleet, name: str) -> set[str]:
    listed = fleet.a.gw.call("GET", "/v1/fine_tuning/jobs?limit=50", fleet.keys[name])
    return {j["status"] for j in listed.body["data"]}


def test_a_tenants_limit_holds_across_both_replicas(fleet: Fleet) -> None:
    fleet.tenant("lim", fine_tuning_concurrency=1)
    first, second = fleet.job("lim", fleet.a), fleet.job("lim", fleet.b)
    runs = fleet.where(first)
    time.sleep(5 * POLL_MS / 1000)  # several rounds of both replicas, each with a free slot
    assert fleet.status("lim", second) == "queued"
    assert all(second not in r.runner.handles for r in fleet.replicas)
    runs.runner.succeed(first)
    fleet.where(second).runner.succeed(second)
    until(lambda: fleet.status("lim", second) == "succeeded")


@pytest.mark.serial
def test_cancel_through_the_other_replica_stops_the_run_within_5_s(fleet: Fleet) -> None:
    fleet.tenant("cxl")
    job_id = fleet.job("cxl", fleet.a)
    runs = fleet.where(job_id)
    handle = runs.runner.handles[job_id]
    started = time.monotonic()
    answer = fleet.other(runs).gw.call(
        "POST", f"/v1/fine_tuning/jobs/{job_id}/cancel", fleet.keys["cxl"]
    )
    assert answer.status == 200 and answer.body["status"] == "cancelled"
    until(lambda: handle.cancelled, 5.0)
    took = time.monotonic() - started
    assert took < 5.0 and job_id not in fleet.running()
    assert fleet.status("cxl", job_id, runs) == "cancelled"
    print(f"\ncancel through the other replica: the run stopped after {took * 1000:.0f} ms")


def test_a_live_job_outlives_the_other_replicas_start_and_many_leases(fleet: Fleet) -> None:
    fleet.tenant("live")
    job_id = fleet.job("live", fleet.b)
    runs = fleet.where(job_id)
    other = fleet.other(runs)
    service = other.gw.app.fine_tuning
    assert service is not None
    other.on_loop(service.resume)  # start-up of the other replica: nothing of this job changes
    other.on_loop(service.lease.round)
    time.sleep(3 * LEASE_MS / 1000)  # three leases long: the owner renews it every poll
    assert fleet.status("live", job_id) == "running"
    runs.runner.succeed(job_id)
    until(lambda: fleet.status("live", job_id) == "succeeded")


def test_a_replica_that_stops_heartbeating_has_its_job_failed_after_the_lease(
    fleet: Fleet,
) -> None:
    fleet.tenant("dead")
    job_id = fleet.job("dead", fleet.a)
    runs = fleet.where(job_id)
    service = runs.gw.app.fine_tuning
    assert service is not None
    runs.on_loop(service.lease.stop)  # the replica hangs: no heartbeat, no claim
    stopped = time.monotonic()
    until(lambda: fleet.status("dead", job_id) == "failed", 3 * LEASE_MS / 1000)
    took = time.monotonic() - stopped
    assert took >= LEASE_MS / 1000 - 2 * POLL_MS / 1000, "failed before the lease ended"
    got = fleet.a.gw.call("GET", f"/v1/fine_tuning/jobs/{job_id}", fleet.keys["dead"]).body
    assert got["error"]["code"] == "crashed"
    assert "stopped" in got["error"]["message"]
    # The replica comes back: its first round finds the job gone and stops the run.
    runs.on_loop(service.resume)
    until(lambda: runs.runner.handles[job_id].cancelled, 5.0)
    assert fleet.status("dead", job_id) == "failed"
