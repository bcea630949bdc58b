"""What a tenant leaves on the record is bounded: counted when made, deleted when old.

A tenant admin could publish and retire model versions, a developer create and cancel
fine-tuning jobs, and quota requests were decided one after another, each a row kept for
ever.  A tenant's versions (retired ones included) and jobs (finished ones included) are
capped, counted under the tenant's lock so six made at once stop at the bound, and the
maintenance loop deletes retired versions, finished jobs (with their events), decided
requests and tenants' ended API keys once older than their retention, never a live
version, an active job, a job whose fine-tuned model still exists, a pending request or
the platform's own keys, and audits it per tenant.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete as sql_delete
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import ORMExecuteState, Session

from bulkhead.app.history import Retention, purge_history
from bulkhead.domain import DeploymentKind, Endpoint, Role, Tier
from bulkhead.errors import Conflict
from bulkhead.store import Database, repo, selfservice, upgrade
from bulkhead.store.bounds import TenantBounds
from bulkhead.store.finetune import JobStore, NewJob
from bulkhead.store.schema import (
    ApiKeyRow,
    FineTuningEventRow,
    FineTuningJobRow,
    ModelRow,
    ModelVersionRow,
    QuotaRequestRow,
    utcnow,
)

UPSTREAM = repo.DeploymentSpec(DeploymentKind.UPSTREAM, base_url="https://up.example/v1")
JOB = NewJob(model="base", training_file="file-x", validation_file=None, suffix=None, hyper={})


class _Audit:
    """Collects what the purge records (the `AuditLog` interface it uses)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)


@pytest.fixture
def bounded(db_url: str, db_admin_url: str | None) -> Iterator[Database]:
    """A store whose tenants may hold 4 model versions and 3 fine-tuning jobs."""
    database = Database(db_url, TenantBounds(model_versions=4, fine_tuning_jobs=3))
    upgrade(database, db_admin_url)
    yield database
    database.dispose()


def _tenant(db: Database, name: str) -> str:
    """A tenant with a private model 'm'; its id."""
    with db.platform_transaction() as s:
        tenant_id = repo.create_tenant(s, name, Tier.SHARED).id
        repo.add_model(s, "m", tenant_id, [Endpoint.CHAT], UPSTREAM)
    return tenant_id


def _publish(db: Database, tenant_id: str, version: str) -> None:
    with db.tenant_transaction(tenant_id) as s:
        selfservice.publish_version(s, tenant_id, "m", version, UPSTREAM)


def _retire(db: Database, tenant_id: str, version: str, at: datetime) -> None:
    with db.tenant_transaction(tenant_id) as s:
        selfservice.retire_version(s, tenant_id, "m", version)
        s.execute(
            update(ModelVersionRow)
            .where(ModelVersionRow.tenant_id == tenant_id, ModelVersionRow.version == version)
            .values(retired_at=at)
        )


def _at_once(work: Callable[[int], None]) -> tuple[int, list[str], list[BaseException]]:
    """Six calls of `work` at once: how many returned, the Conflicts' messages, the rest."""
    made, refused, errors = [0], [], []

    def run(i: int) -> None:
        try:
            work(i)
            made[0] += 1
        except Conflict as exc:
            refused.append(exc.message)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return made[0], refused, errors


def test_versions_retired_ones_included_stop_at_the_bound_when_published_at_once(
    bounded: Database,
) -> None:
    mine, theirs = _tenant(bounded, "t-one"), _tenant(bounded, "t-two")
    _publish(bounded, mine, "v0")
    _retire(bounded, mine, "v0", utcnow())  # retired, still on the record: counted
    made, refused, errors = _at_once(lambda i: _publish(bounded, mine, f"v{i + 1}"))
    assert not errors and made == 3 and len(refused) == 3, (made, refused, errors)
    assert all("BULKHEAD_TENANT_MAX_MODEL_VERSIONS" in m for m in refused), refused
    for i in range(4):  # another tenant has its own count
        _publish(bounded, theirs, f"v{i}")


def test_jobs_finished_ones_included_stop_at_the_bound_when_created_at_once(
    bounded: Database,
) -> None:
    mine, theirs = _tenant(bounded, "t-one"), _tenant(bounded, "t-two")
    jobs = JobStore(bounded)
    made, refused, errors = _at_once(lambda i: jobs.create(mine, JOB))
    assert not errors and made == 3 and len(refused) == 3, (made, refused, errors)
    assert all("BULKHEAD_TENANT_MAX_FINE_TUNING_JOBS" in m for m in refused), refused
    for job in jobs.page(mine)[0]:
        assert jobs.move(mine, job.id, "cancelled", "Cancelled.") is not None
    with pytest.raises(Conflict, match="BULKHEAD_TENANT_MAX_FINE_TUNING_JOBS"):
        jobs.create(mine, JOB)  # finished jobs still count until maintenance deletes them
    jobs.create(theirs, JOB)


def _job(db: Database, tenant_id: str, status: str, ended: datetime | None, model: str = "") -> str:
    jobs = JobStore(db)
    job = jobs.create(tenant_id, JOB)
    jobs.add_event(tenant_id, job.id, "metrics", "step 1", step=1)
    with db.tenant_transaction(tenant_id) as s:
        s.execute(
            update(FineTuningJobRow)
            .where(FineTuningJobRow.id == job.id)
            .values(status=status, finished_at=ended, fine_tuned_model=model or None)
        )
    return job.id


def _request(db: Database, tenant_id: str, decided: datetime | None) -> str:
    with db.tenant_transaction(tenant_id) as s:
        made = selfservice.create_quota_request(
            s, tenant_id, quota="requests_per_minute", value=5, reason="r", requested_by="p"
        )
    if decided is not None:
        with db.platform_transaction() as s:
            selfservice.decide_quota_request(
                s, made.id, approve=False, decided_by="admin", reason=None
            )
            s.execute(
                update(QuotaRequestRow)
                .where(QuotaRequestRow.id == made.id)
                .values(decided_at=decided)
            )
    return made.id


def _key(db: Database, tenant_id: str | None, **ended: datetime) -> str:
    """A key, its `revoked_at` or `expires_at` then set as given; its id."""
    role = Role.END_USER if tenant_id else Role.PLATFORM_ADMIN
    with db.platform_transaction() as s:
        key_id = repo.create_key(s, tenant_id, role=role).key.id
        if ended:
            s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(**ended))
    return key_id


def _ids(db: Database, column: Any) -> set[str]:
    with db.platform_transaction() as s:
        return set(s.execute(select(column)).scalars())


def _seed(db: Database, tenant_id: str, now: datetime) -> dict[str, str]:
    """One of each kind of row, old (past every retention) or recent; their ids by role."""
    old, recent = now - timedelta(days=400), now - timedelta(days=10)
    for version in ("live", "old", "recent"):
        _publish(db, tenant_id, version)
    _retire(db, tenant_id, "old", old)
    _retire(db, tenant_id, "recent", recent)
    with db.platform_transaction() as s:
        versions = dict(
            s.execute(
                select(ModelVersionRow.version, ModelVersionRow.id).where(
                    ModelVersionRow.tenant_id == tenant_id
                )
            ).all()
        )
        # The tuned model that one succeeded job made, still there.
        repo.add_model(s, f"ft:m:{tenant_id}:kept", tenant_id, [Endpoint.CHAT], UPSTREAM)
    return {
        "version_live": versions["live"],
        "version_old": versions["old"],
        "version_recent": versions["recent"],
        "job_failed_old": _job(db, tenant_id, "failed", old),
        "job_model_kept": _job(db, tenant_id, "succeeded", old, f"ft:m:{tenant_id}:kept"),
        "job_model_gone": _job(db, tenant_id, "succeeded", old, f"ft:m:{tenant_id}:gone"),
        "job_cancelled_recent": _job(db, tenant_id, "cancelled", recent),
        "job_queued": _job(db, tenant_id, "queued", None),
        "request_old": _request(db, tenant_id, old),
        "request_recent": _request(db, tenant_id, recent),
        "request_pending": _request(db, tenant_id, None),
        "key_live": _key(db, tenant_id),
        "key_revoked_old": _key(db, tenant_id, revoked_at=now - timedelta(days=401)),
        "key_expired_old": _key(db, tenant_id, expires_at=now - timedelta(days=401)),
        "key_revoked_recent": _key(db, tenant_id, revoked_at=now - timedelta(days=60)),
    }


def test_maintenance_deletes_only_old_retired_finished_decided_and_ended_rows(db: Database) -> None:
    now = utcnow()
    mine, theirs = _tenant(db, "t-one"), _tenant(db, "t-two")
    seeded = _seed(db, mine, now)
    # Another tenant names a model after one of mine whose model is gone: mine still goes.
    with db.platform_transaction() as s:
        repo.add_model(s, f"ft:m:{mine}:gone", theirs, [Endpoint.CHAT], UPSTREAM)
    _publish(db, theirs, "v1")
    _retire(db, theirs, "v1", now - timedelta(days=10))
    their_job = _job(db, theirs, "failed", now - timedelta(days=10))
    platform_key = _key(db, None, revoked_at=now - timedelta(days=401))  # not a tenant's
    audit = _Audit()
    done = purge_history(db, audit, Retention(), now, batch=2)  # type: ignore[arg-type]
    assert done == {
        "model_versions_purged": 1,
        "fine_tuning_jobs_purged": 2,
        "quota_requests_purged": 1,
        "api_keys_purged": 2,
    }
    gone = {"version_old", "job_failed_old", "job_model_gone", "request_old"}
    gone |= {"key_revoked_old", "key_expired_old"}
    kept = {seeded[k] for k in seeded if k not in gone}
    tables = (ModelVersionRow.id, FineTuningJobRow.id, QuotaRequestRow.id, ApiKeyRow.id)
    left = set().union(*(_ids(db, column) for column in tables))
    assert kept <= left and not {seeded[k] for k in gone} & left
    assert their_job in left and platform_key in left
    with db.platform_transaction() as s:
        orphans = s.execute(
            select(func.count())
            .select_from(FineTuningEventRow)
            .where(
                FineTuningEventRow.job_id.in_([seeded["job_failed_old"], seeded["job_model_gone"]])
            )
        ).scalar_one()
        assert orphans == 0  # their events went with them
        assert s.execute(select(func.count()).select_from(ModelRow)).scalar_one() == 4
    actions = sorted((e.action, e.tenant_id, e.reason) for e in audit.events)
    assert actions == [
        (
            "system:api_keys.purge",
            mine,
            "2 revoked or expired API key(s) older than 400 days deleted",
        ),
        (
            "system:fine_tuning_jobs.purge",
            mine,
            "2 finished fine-tuning job(s) older than 180 days deleted",
        ),
        (
            "system:model_versions.purge",
            mine,
            "1 retired model version(s) older than 90 days deleted",
        ),
        (
            "system:quota_requests.purge",
            mine,
            "1 decided quota request(s) older than 365 days deleted",
        ),
    ]
    again = purge_history(db, _Audit(), Retention(), now)  # type: ignore[arg-type]
    assert set(again.values()) == {0}


def test_publishing_while_maintenance_deletes_stays_within_the_bound(bounded: Database) -> None:
    """Maintenance deletes a tenant's old retired versions while its admin publishes: no
    deadlock and no error but the bound's 409, and never more than the bound held."""
    mine = _tenant(bounded, "t-one")
    for i in range(4):
        _publish(bounded, mine, f"old{i}")
        _retire(bounded, mine, f"old{i}", utcnow() - timedelta(days=100))

    def work(i: int) -> None:
        if i % 2:
            purge_history(bounded, _Audit(), Retention(), batch=1)  # type: ignore[arg-type]
        else:
            _publish(bounded, mine, f"v{i}")

    made, refused, errors = _at_once(work)
    assert not errors, errors
    assert all("BULKHEAD_TENANT_MAX_MODEL_VERSIONS" in m for m in refused), refused
    assert len(_ids(bounded, ModelVersionRow.id)) <= 4
    purge_history(bounded, _Audit(), Retention())  # type: ignore[arg-type]
    published = made - 3  # the three purges returned too
    assert len(_ids(bounded, ModelVersionRow.id)) == published  # only the new ones left


def test_a_purge_counts_only_the_rows_it_deleted(db: Database) -> None:
    """Every replica runs maintenance: two purges that found the same old rows both
    reached their DELETE, and the second, deleting nothing (the first had), audited the
    tenant's rows as deleted again (review 9).  Here the rows go between each purge's
    SELECT and its DELETE, as another replica's would: nothing is counted or audited."""
    now = utcnow()
    mine = _tenant(db, "t-one")
    seeded = _seed(db, mine, now)
    rows: dict[Any, list[str]] = {
        ModelVersionRow: [seeded["version_old"]],
        FineTuningJobRow: [seeded["job_failed_old"], seeded["job_model_gone"]],
        QuotaRequestRow: [seeded["request_old"]],
        ApiKeyRow: [seeded["key_revoked_old"], seeded["key_expired_old"]],
    }

    def first(state: ORMExecuteState) -> None:
        """Before a purge's DELETE of a kind, another 'replica' deletes the same rows."""
        table = getattr(state.statement, "table", None)
        for kind, ids in rows.items():
            if state.is_delete and getattr(table, "name", None) == kind.__tablename__:
                if kind is FineTuningJobRow:
                    state.session.connection().execute(
                        sql_delete(FineTuningEventRow).where(FineTuningEventRow.job_id.in_(ids))
                    )
                state.session.connection().execute(sql_delete(kind).where(kind.id.in_(ids)))

    audit = _Audit()
    event.listen(Session, "do_orm_execute", first)
    try:
        done = purge_history(db, audit, Retention(), now)  # type: ignore[arg-type]
    finally:
        event.remove(Session, "do_orm_execute", first)
    assert set(done.values()) == {0}, done
    assert audit.events == []
    left = set().union(*(_ids(db, kind.id) for kind in rows))
    assert not {i for ids in rows.values() for i in ids} & left
