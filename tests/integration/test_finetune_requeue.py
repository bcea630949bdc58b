"""A replica that shuts down puts the jobs it ran back in the queue; it never cancels them.

In a rolling restart every replica stops in turn: a job running on one must
go on elsewhere, not end "cancelled" when nobody asked.  Two replicas on one
PostgreSQL database: the one running a job shuts down (the application's
lifespan shutdown, as `bulkhead serve` does on SIGTERM), the job is `queued`
again with an event and an audit event, and the other replica runs it to
success.  On SQLite (one replica) the restarted gateway claims it again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.store.finetune_lease import REQUEUED
from bulkhead.testing.fake_runner import FakeRunner
from tests.integration.test_finetune_lease import BASE, Fleet, Replica, until, upload
from tests.support.gateway import GatewayThread
from tests.support.postgres import create_database
from tests.support.softhsm import SoftHsm


@pytest.fixture
def fleet(tmp_path: Path, pg_admin_url: str, softhsm: SoftHsm) -> Iterator[Fleet]:
    admin = create_database(pg_admin_url, "bulkhead_ft_requeue")
    data = tmp_path / "data"
    a, b = Replica(data, admin, softhsm), Replica(data, admin, softhsm)
    a.gw.must("POST", "/admin/v1/models", {"name": BASE, "worker": "smollm2-135m"})
    yield Fleet(a, b)
    for r in (a, b):
        r.gw.stop()


def events(gw: GatewayThread, key: str, job_id: str) -> list[str]:
    got = gw.call("GET", f"/v1/fine_tuning/jobs/{job_id}/events?limit=100", key)
    assert got.status == 200, got.body
    return [e["message"] for e in reversed(got.body["data"])]


def test_shutting_down_a_replica_requeues_its_job_and_the_other_runs_it(fleet: Fleet) -> None:
    key = fleet.tenant("roll")
    job_id = fleet.job("roll", fleet.a)
    runs = fleet.where(job_id)
    other = fleet.other(runs)
    handle = runs.runner.handles[job_id]
    runs.gw.stop()  # the lifespan shutdown: `Application.shutdown`
    assert handle.cancelled, "the shutdown must stop the run"
    until(lambda: job_id in other.runner.handles)
    assert fleet.status("roll", job_id, other) == "running"
    other.runner.succeed(job_id)
    until(lambda: fleet.status("roll", job_id, other) == "succeeded")
    told = events(other.gw, key, job_id)
    assert told.count(REQUEUED) == 1 and told.count("Training started.") == 2
    assert "Job cancelled." not in told
    audit = [(e["action"], e.get("reason")) for e in other.gw.audit_events()]
    ours = [a for a in audit if a[0].startswith("system:fine_tuning.job.")]
    assert ("system:fine_tuning.job.queued", "replica_shutdown") in ours
    assert not any(a == "system:fine_tuning.job.cancelled" for a, _ in ours)
    # What the stopped run trained on stays charged and counted as the tenant's usage.
    assert ("v1:fine_tuning.train", None) in audit


def test_a_single_replica_restart_picks_the_job_up_again(tmp_path: Path) -> None:
    env = {"BULKHEAD_FINE_TUNING_JOBS": "1", "BULKHEAD_FINE_TUNING_POLL_MS": "100"}
    data = tmp_path / "data"

    def gateway(runner: FakeRunner) -> GatewayThread:
        return GatewayThread(data, None, env=env, fine_tuning_runner=runner).start()

    first_runner = FakeRunner()
    gw = gateway(first_runner)
    gw.must("POST", "/admin/v1/models", {"name": BASE, "worker": "smollm2-135m"})
    gw.tenant("solo")
    gw.must("POST", f"/admin/v1/models/{BASE}/grants", {"tenant": "solo"})
    key = gw.key("solo", role="model_developer")
    body: dict[str, Any] = {"model": BASE, "training_file": upload(gw, key)}
    made = gw.call("POST", "/v1/fine_tuning/jobs", key, body)
    assert made.status == 200, made.body
    job_id = str(made.body["id"])
    handle = first_runner.wait_started(job_id)
    gw.stop()
    assert handle.cancelled
    second_runner = FakeRunner()
    again = gateway(second_runner)
    try:
        second_runner.wait_started(job_id)
        second_runner.succeed(job_id)
        deadline = time.monotonic() + 10
        while (job := again.call("GET", f"/v1/fine_tuning/jobs/{job_id}", key).body)[
            "status"
        ] != "succeeded":
            assert time.monotonic() < deadline, job
            time.sleep(0.02)
        assert job["fine_tuned_model"].endswith(job_id)
        assert events(again, key, job_id).count(REQUEUED) == 1
    finally:
        again.stop()
