"""What a tenant leaves on the record: counted when made, deleted once past its retention.

A tenant admin can publish and retire model versions, a developer create and cancel
fine-tuning jobs, and a tenant's requests for more quota are decided one after another:
each left a row (a job, its events too) for ever.  A tenant's versions, retired ones
included, and its jobs, finished ones included, are bounded (`check_version_room`,
`check_job_room`: 409 naming the setting; the caller holds the tenant's lock, so what
they count they count alone).  The maintenance loop deletes, at most `limit` rows a
call, across tenants (`app.history`):

- retired model versions retired before the cutoff (a live one is never touched: it is a
  deployment in every catalog);
- finished fine-tuning jobs (succeeded, failed, cancelled) that ended before it, with their
  events, except a succeeded job whose fine-tuned model still exists (its model names it,
  and its checkpoints are read through it);
- decided quota requests (approved or denied) decided before it; a pending one never (the
  approved value lives in the tenant's quotas, and the audit log keeps every decision);
- tenants' API keys revoked or expired before it (a tenant admin could make and revoke keys
  without end: `BULKHEAD_TENANT_MAX_KEYS` counts those ended within 30 days only).  The
  cutoff is always older than those 30 days (`repo.keys.KEPT_AFTER_END`), so no replica's
  catalog holds a key deleted here: its token already answered as an unknown key.

No other row refers to these by a foreign key but a job's events (deleted first).  Each
function answers how many rows of each tenant its own DELETE removed (`RETURNING`), for
the audit: every replica runs maintenance, and two purges may find the same rows.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, not_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningDelete

from bulkhead.errors import Conflict
from bulkhead.store.bounds import bounds_of
from bulkhead.store.schema import (
    ApiKeyRow,
    FineTuningEventRow,
    FineTuningJobRow,
    ModelRow,
    ModelVersionRow,
    QuotaRequestRow,
)

FINAL = ("succeeded", "failed", "cancelled")
DECIDED = ("approved", "denied")


def check_version_room(session: Session, tenant_id: str) -> None:
    """Refuse (409) a version more than `TenantBounds.model_versions`, retired included."""
    held = session.execute(
        select(func.count())
        .select_from(ModelVersionRow)
        .where(ModelVersionRow.tenant_id == tenant_id)
    ).scalar_one()
    if held >= bounds_of(session).model_versions:
        raise Conflict(
            f"The tenant holds {held} model versions, live and retired, the most "
            "BULKHEAD_TENANT_MAX_MODEL_VERSIONS allows: retired versions are deleted once "
            "older than BULKHEAD_RETIRED_VERSION_RETENTION_DAYS."
        )


def check_job_room(session: Session, tenant_id: str) -> None:
    """Refuse (409) a job more than `TenantBounds.fine_tuning_jobs`, finished included."""
    held = session.execute(
        select(func.count())
        .select_from(FineTuningJobRow)
        .where(FineTuningJobRow.tenant_id == tenant_id)
    ).scalar_one()
    if held >= bounds_of(session).fine_tuning_jobs:
        raise Conflict(
            f"The tenant holds {held} fine-tuning jobs, the most "
            "BULKHEAD_TENANT_MAX_FINE_TUNING_JOBS allows: finished jobs are deleted once "
            "older than BULKHEAD_FINE_TUNING_JOB_RETENTION_DAYS."
        )


def purge_retired_versions(session: Session, before: datetime, limit: int) -> Counter[str]:
    """Delete at most `limit` versions retired before `before`; how many of each tenant."""
    found = (
        session.execute(
            select(ModelVersionRow.id)
            .where(ModelVersionRow.retired_at.is_not(None), ModelVersionRow.retired_at < before)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    return _deleted(
        session,
        delete(ModelVersionRow)
        .where(ModelVersionRow.id.in_(list(found)), ModelVersionRow.retired_at.is_not(None))
        .returning(ModelVersionRow.tenant_id),
    )


def purge_finished_jobs(session: Session, before: datetime, limit: int) -> Counter[str]:
    """Delete at most `limit` jobs that ended before `before`, and their events, keeping a
    succeeded job whose fine-tuned model is still the tenant's; how many of each tenant."""
    job = FineTuningJobRow
    model_kept = exists().where(
        ModelRow.owner_tenant_id == job.tenant_id, ModelRow.name == job.fine_tuned_model
    )
    found = (
        session.execute(
            select(job.id)
            .where(
                job.status.in_(FINAL),
                job.finished_at.is_not(None),
                job.finished_at < before,
                not_(
                    and_(job.status == "succeeded", job.fine_tuned_model.is_not(None), model_kept)
                ),
            )
            .limit(limit)
        )
        .scalars()
        .all()
    )
    ids = list(found)
    if ids:
        session.execute(
            delete(FineTuningEventRow).where(FineTuningEventRow.job_id.in_(ids)),
            execution_options={"synchronize_session": False},
        )
    return _deleted(
        session,
        delete(job).where(job.id.in_(ids), job.status.in_(FINAL)).returning(job.tenant_id),
    )


def purge_decided_quota_requests(session: Session, before: datetime, limit: int) -> Counter[str]:
    """Delete at most `limit` requests decided before `before`; how many of each tenant."""
    found = (
        session.execute(
            select(QuotaRequestRow.id)
            .where(
                QuotaRequestRow.status.in_(DECIDED),
                QuotaRequestRow.decided_at.is_not(None),
                QuotaRequestRow.decided_at < before,
            )
            .limit(limit)
        )
        .scalars()
        .all()
    )
    return _deleted(
        session,
        delete(QuotaRequestRow)
        .where(QuotaRequestRow.id.in_(list(found)), QuotaRequestRow.status.in_(DECIDED))
        .returning(QuotaRequestRow.tenant_id),
    )


def purge_ended_keys(session: Session, before: datetime, limit: int) -> Counter[str]:
    """Delete at most `limit` tenants' keys revoked or expired before `before`; how many
    of each tenant.  The platform's own keys (no tenant) are not touched."""
    ended = or_(ApiKeyRow.revoked_at < before, ApiKeyRow.expires_at < before)
    found = (
        session.execute(
            select(ApiKeyRow.id).where(ApiKeyRow.tenant_id.is_not(None), ended).limit(limit)
        )
        .scalars()
        .all()
    )
    return _deleted(
        session,
        delete(ApiKeyRow)
        .where(ApiKeyRow.id.in_(list(found)), ended)
        .returning(ApiKeyRow.tenant_id),
    )


def _deleted(session: Session, statement: ReturningDelete[tuple[str | None]]) -> Counter[str]:
    """Run a DELETE … RETURNING tenant_id; how many rows of each tenant it deleted.  Not
    how many the SELECT before it found: every replica runs maintenance, and a purge
    whose rows another deleted meanwhile (its DELETE waited on theirs) deleted nothing.
    """
    rows = session.execute(statement, execution_options={"synchronize_session": False})
    return Counter(str(tenant) for tenant in rows.scalars())
