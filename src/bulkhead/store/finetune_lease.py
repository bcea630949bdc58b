"""The fine-tuning lease: every replica claims, renews and reaps jobs in the shared database.

A job runs on exactly one replica.  A replica *claims* `queued` jobs with a
conditional UPDATE (queued -> running, `lease_owner` = its id, `lease_until`
= now + TTL); while it runs them it *renews* their leases (a heartbeat, every
poll); a replica that finds a `running` job whose lease has ended *reaps* it
(failed, "crashed": the replica that ran it stopped) — never one whose lease
is live, since the reaping UPDATE is conditional on the lease having ended.
A replica that shuts down gracefully *requeues* the jobs it ran instead
(running -> queued, lease cleared), so the fleet claims them again.

The claim is one transaction that also holds each tenant to its
`fine_tuning_concurrency` across the fleet (it counts the tenant's `running`
rows) and shares the slots fairly: the tenant with the fewest jobs running
first, ties to the tenant whose last job started longest ago (round-robin
across the fleet, from `started_at`), then the oldest waiting job; within a
tenant, oldest first.  On PostgreSQL the transaction first takes one
advisory lock, so claims from all replicas run one at a time and a count is
never stale when its UPDATE commits; cancels and renewals need no lock (each
is one conditional UPDATE).  SQLite serves one replica, whose claims come
from one loop.

Times are the replicas' clocks (UTC): they must agree to well within the TTL.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from bulkhead.store.db import Database
from bulkhead.store.finetune import (  # one module in two files
    TRANSITIONS,
    JobInfo,
    _add_event,
    _job,
)
from bulkhead.store.schema import FineTuningJobRow, utcnow

CLAIM_LOCK = int.from_bytes(
    hashlib.sha256(b"bulkhead/fine-tuning/claim").digest()[:8], "big", signed=True
)
CRASHED = "The replica that ran the job stopped."
REQUEUED = "Requeued: the replica running it shut down."
_Job = FineTuningJobRow


class JobLeases:
    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        ttl_s: float,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.db, self.owner, self.clock = db, owner, clock
        self.ttl = timedelta(seconds=ttl_s)

    def claim(self, slots: int, concurrency: Callable[[str], int]) -> list[JobInfo]:
        """Up to `slots` queued jobs, now running under this replica's lease (fairly, within
        each tenant's `concurrency(tenant_id)` across the fleet), each with its event."""
        if slots <= 0:
            return []
        now = self.clock()
        with self.db.platform_transaction() as session:
            if self.db.dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            waiting = _waiting(session, slots)
            if not waiting:
                return []
            running, served = _running(session, waiting), _served(session, waiting)
            claimed: list[JobInfo] = []
            for turn in range(slots * 4):  # a job cancelled meanwhile takes a turn, not a slot
                tenant_id = _pick(waiting, running, served, concurrency)
                if tenant_id is None or len(claimed) == slots:
                    break
                job_id = waiting[tenant_id].popleft()[1]
                served[tenant_id] = now.timestamp() + turn * 1e-6
                job = self._take(session, tenant_id, job_id, now)
                if job is not None:
                    running[tenant_id] = running.get(tenant_id, 0) + 1
                    claimed.append(job)
            return claimed

    def _take(self, session: Session, tenant_id: str, job_id: str, now: datetime) -> JobInfo | None:
        taken = session.execute(
            update(_Job)
            .where(_Job.id == job_id, _Job.status == "queued")
            .values(status="running", lease_owner=self.owner, lease_until=now + self.ttl)
            .values(started_at=now)
        )
        if getattr(taken, "rowcount", 0) != 1:
            return None  # cancelled since it was read
        _add_event(session, tenant_id, job_id, "status", "info", "Training started.")
        row = session.get(_Job, job_id)
        assert row is not None
        return _job(row)

    def renew(self, job_ids: Collection[str]) -> set[str]:
        """Extend this replica's leases of `job_ids`; the ids still running under them (the
        others were cancelled, ended or reaped elsewhere: their runs must stop)."""
        if not job_ids:
            return set()
        mine = (
            _Job.id.in_(list(job_ids)),
            _Job.status == "running",
            _Job.lease_owner == self.owner,
        )
        with self.db.platform_transaction() as session:
            session.execute(update(_Job).where(*mine).values(lease_until=self.clock() + self.ttl))
            return set(session.execute(select(_Job.id).where(*mine)).scalars())

    def requeue(self, job_ids: Collection[str]) -> list[JobInfo]:
        """Put back in the queue the jobs of `job_ids` still running under this replica's
        lease (it shuts down and has stopped their runs), each with its event."""
        assert "running" in TRANSITIONS["queued"]
        requeued: list[JobInfo] = []
        with self.db.platform_transaction() as session:
            for job_id in job_ids:
                moved = session.execute(
                    update(_Job)
                    .where(_Job.id == job_id, _Job.status == "running")
                    .where(_Job.lease_owner == self.owner)
                    .values(status="queued", lease_owner=None, lease_until=None)
                )
                if getattr(moved, "rowcount", 0) != 1:
                    continue  # cancelled, ended or reaped meanwhile: left as it is
                row = session.get(_Job, job_id)
                assert row is not None
                _add_event(session, row.tenant_id, job_id, "status", "warn", REQUEUED)
                requeued.append(_job(row))
        return requeued

    def reap(self) -> list[JobInfo]:
        """Fail every running job whose lease has ended (its replica stopped renewing it)."""
        now = self.clock()
        ended = (_Job.status == "running", _Job.lease_until < now)
        reaped: list[JobInfo] = []
        with self.db.platform_transaction() as session:
            found = session.execute(select(_Job.id, _Job.tenant_id).where(*ended)).all()
            for job_id, tenant_id in found:
                failed = session.execute(
                    update(_Job)
                    .where(_Job.id == job_id, *ended)
                    .values(status="failed", error_code="crashed", error_message=CRASHED)
                    .values(finished_at=now)
                )
                if getattr(failed, "rowcount", 0) != 1:
                    continue
                _add_event(
                    session, tenant_id, job_id, "status", "error", "The job failed: crashed."
                )
                row = session.get(_Job, job_id)
                assert row is not None
                reaped.append(_job(row))
        return reaped


def _waiting(session: Session, slots: int) -> dict[str, deque[tuple[datetime, str]]]:
    """Each tenant's oldest `slots` queued jobs, (created_at, id) oldest first."""
    order = func.row_number().over(partition_by=_Job.tenant_id, order_by=(_Job.created_at, _Job.id))
    ranked = (
        select(_Job.id, _Job.tenant_id, _Job.created_at, order.label("n"))
        .where(_Job.status == "queued")
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.tenant_id, ranked.c.created_at, ranked.c.id)
        .where(ranked.c.n <= slots)
        .order_by(ranked.c.created_at, ranked.c.id)
    ).all()
    waiting: dict[str, deque[tuple[datetime, str]]] = {}
    for tenant_id, created_at, job_id in rows:
        waiting.setdefault(tenant_id, deque()).append((created_at, job_id))
    return waiting


def _running(session: Session, tenants: Collection[str]) -> dict[str, int]:
    """Each tenant's running jobs, on every replica."""
    query = select(_Job.tenant_id, func.count()).where(
        _Job.tenant_id.in_(list(tenants)), _Job.status == "running"
    )
    return {t: int(n) for t, n in session.execute(query.group_by(_Job.tenant_id)).tuples()}


def _served(session: Session, tenants: Collection[str]) -> dict[str, float]:
    """When each tenant's latest job started (epoch seconds), on any replica."""
    query = select(_Job.tenant_id, func.max(_Job.started_at)).where(
        _Job.tenant_id.in_(list(tenants)), _Job.started_at.is_not(None)
    )
    rows = session.execute(query.group_by(_Job.tenant_id)).tuples()
    return {t: at.timestamp() for t, at in rows if at is not None}


def _pick(
    waiting: dict[str, deque[tuple[datetime, str]]],
    running: dict[str, int],
    served: dict[str, float],
    concurrency: Callable[[str], int],
) -> str | None:
    """The tenant whose head job starts next: under its limit, fewest running, served
    longest ago (never: first), then the oldest head job; None if no tenant may start."""
    best: tuple[int, float, datetime, str] | None = None
    for tenant_id, jobs in waiting.items():
        count = running.get(tenant_id, 0)
        if not jobs or count >= concurrency(tenant_id):
            continue
        rank = (count, served.get(tenant_id, float("-inf")), jobs[0][0], tenant_id)
        if best is None or rank < best:
            best = rank
    return None if best is None else best[3]
