"""The fine-tuning lease in the store: fair claims across replicas, renewal, reaping.

Two `JobLeases` with different owners on one database are two replicas.  The
clock is injected, so a lease ends when the test says so.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from bulkhead.domain import Tier
from bulkhead.store import Database, repo
from bulkhead.store.finetune import JobStore, NewJob
from bulkhead.store.finetune_lease import CRASHED, REQUEUED, JobLeases
from bulkhead.store.schema import utcnow

TTL_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


def tenants(db: Database, *names: str) -> dict[str, str]:
    with db.platform_transaction() as session:
        return {n: repo.create_tenant(session, n, Tier.SHARED).id for n in names}


def queue(db: Database, tenant_id: str, count: int = 1) -> list[str]:
    store, made = JobStore(db), []
    for _ in range(count):
        job = store.create(tenant_id, NewJob("m", "file-x", None, None, {"epochs": 1}))
        assert store.move(tenant_id, job.id, "queued", "queued") is not None
        made.append(job.id)
    return made


def test_claims_are_fair_and_hold_each_limit_across_replicas(db: Database) -> None:
    ids = tenants(db, "busy", "quiet")
    clock = Clock()
    a = JobLeases(db, owner="replica-a", ttl_s=TTL_S, clock=clock)
    b = JobLeases(db, owner="replica-b", ttl_s=TTL_S, clock=clock)
    limits = {ids["busy"]: 2, ids["quiet"]: 1}
    busy = queue(db, ids["busy"], 4)
    clock.tick()
    quiet = queue(db, ids["quiet"], 2)
    first = [j.id for j in a.claim(1, limits.__getitem__)]
    assert first == busy[:1]  # oldest job; nobody served yet
    clock.tick()
    second = [j.id for j in b.claim(3, limits.__getitem__)]
    # quiet has none running; then busy (one running, under its 2); quiet is at its 1.
    assert second == [quiet[0], busy[1]]
    assert a.claim(5, limits.__getitem__) == []  # every tenant at its limit, fleet-wide
    jobs = JobStore(db)
    assert jobs.get(ids["busy"], busy[0]).lease_owner == "replica-a"
    assert jobs.get(ids["busy"], busy[1]).lease_owner == "replica-b"
    # A slot frees for busy: its next job, oldest first.
    jobs.move(ids["busy"], busy[0], "succeeded", "done")
    clock.tick()
    assert [j.id for j in b.claim(5, limits.__getitem__)] == [busy[2]]


def test_ties_take_turns_across_the_fleet(db: Database) -> None:
    ids = tenants(db, "ta", "tb")
    clock = Clock()
    replicas = [JobLeases(db, owner=f"r{i}", ttl_s=TTL_S, clock=clock) for i in range(2)]
    ta, tb = queue(db, ids["ta"], 3), queue(db, ids["tb"], 2)
    jobs, order = JobStore(db), []
    for turn in range(5):  # one slot in all: each job ends before the next is claimed
        clock.tick()
        (job,) = replicas[turn % 2].claim(1, lambda _t: 5)
        order.append(job.id)
        jobs.move(job.tenant_id, job.id, "succeeded", "done")
    assert order == [ta[0], tb[0], ta[1], tb[1], ta[2]]


def test_a_limit_of_zero_or_a_cancelled_job_starts_nothing(db: Database) -> None:
    ids = tenants(db, "zero", "gone")
    leases = JobLeases(db, owner="r", ttl_s=TTL_S)
    queue(db, ids["zero"])
    (cancelled,) = queue(db, ids["gone"])
    JobStore(db).move(ids["gone"], cancelled, "cancelled", "cancelled")
    assert leases.claim(4, lambda t: 0 if t == ids["zero"] else 1) == []


def test_renewal_keeps_a_live_job_and_reaping_fails_only_an_ended_lease(db: Database) -> None:
    ids = tenants(db, "lease")
    t = ids["lease"]
    clock = Clock()
    a = JobLeases(db, owner="replica-a", ttl_s=TTL_S, clock=clock)
    b = JobLeases(db, owner="replica-b", ttl_s=TTL_S, clock=clock)
    live, dead, cancelled = queue(db, t, 3)
    assert len(a.claim(3, lambda _t: 3)) == 3
    JobStore(db).move(t, cancelled, "cancelled", "cancelled through another replica")
    for _ in range(3):  # a heartbeats `live` alone, well past the TTL
        clock.tick(TTL_S / 2)
        assert a.renew([live]) == {live}
        assert b.renew([live]) == set()  # not b's lease: b renews nothing
    assert a.renew([live, cancelled]) == {live}  # the cancelled one must stop
    reaped = b.reap()
    assert [j.id for j in reaped] == [dead]
    assert reaped[0].status == "failed" and reaped[0].error_code == "crashed"
    assert reaped[0].error_message == CRASHED
    jobs = JobStore(db)
    assert jobs.get(t, live).status == "running" and jobs.get(t, cancelled).status == "cancelled"
    assert a.renew([dead]) == set()  # a replica that comes back finds its job gone
    assert b.reap() == []
    events, _ = jobs.events(t, dead, limit=50)
    assert events[0].message == "The job failed: crashed." and events[0].level == "error"


def test_requeue_puts_back_only_this_replicas_running_jobs(db: Database) -> None:
    ids = tenants(db, "requeue")
    t = ids["requeue"]
    a = JobLeases(db, owner="replica-a", ttl_s=TTL_S)
    b = JobLeases(db, owner="replica-b", ttl_s=TTL_S)
    mine, cancelled, theirs = queue(db, t, 3)
    assert [j.id for j in a.claim(2, lambda _t: 3)] == [mine, cancelled]
    assert [j.id for j in b.claim(1, lambda _t: 3)] == [theirs]
    JobStore(db).move(t, cancelled, "cancelled", "cancelled by the user")
    requeued = a.requeue([mine, cancelled, theirs])
    assert [j.id for j in requeued] == [mine]
    assert requeued[0].status == "queued" and requeued[0].lease_owner is None
    jobs = JobStore(db)
    assert jobs.get(t, cancelled).status == "cancelled" and jobs.get(t, theirs).status == "running"
    events, _ = jobs.events(t, mine, limit=50)
    assert events[0].message == REQUEUED and events[0].level == "warn"
    assert a.requeue([mine]) == []  # already queued: nothing written twice
    assert [j.id for j in b.claim(1, lambda _t: 3)] == [mine]  # the fleet claims it again


# PostgreSQL only: SQLite serves one replica, whose claims come from one loop.
@pytest.mark.parametrize("db_urls", ["postgresql"], indirect=True)
def test_concurrent_claims_never_pass_a_tenant_limit(db: Database) -> None:
    """Four replicas claim at once, ten times: one job of the tenant runs at a time."""
    assert db.dialect == "postgresql"
    t = tenants(db, "race")["race"]
    jobs = JobStore(db)
    queue(db, t, 10)
    replicas = [JobLeases(db, owner=f"r{i}", ttl_s=TTL_S) for i in range(4)]
    for _ in range(10):
        barrier, claimed = threading.Barrier(len(replicas)), []

        def claim(leases: JobLeases, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            claimed.extend(leases.claim(3, lambda _t: 1))

        threads = [threading.Thread(target=claim, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(claimed) <= 1
        for job in claimed:
            jobs.move(t, job.id, "succeeded", "done")
