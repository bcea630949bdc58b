"""The maintenance loop's deletion of old records: retired model versions, finished
fine-tuning jobs, decided quota requests and ended API keys (`store.history`), each after
its retention.

Batches of `BATCH` rows a transaction, at most `BATCHES` a kind a run: short transactions,
and a run that ends even if a tenant outpaces it (the rest waits for the next run; the
per-tenant bounds, `BULKHEAD_TENANT_MAX_MODEL_VERSIONS` and
`BULKHEAD_TENANT_MAX_FINE_TUNING_JOBS`, hold meanwhile).  Each tenant whose rows went gets
one audit event a kind a run, naming how many: its own audit view shows what the platform
deleted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import AuditLog
from bulkhead.store import Database, history
from bulkhead.store.repo.keys import KEPT_AFTER_END
from bulkhead.store.schema import utcnow

BATCH = 1_000
BATCHES = 100

Purge = Callable[[Session, datetime, int], Counter[str]]
RETIRED: Purge = history.purge_retired_versions
FINISHED: Purge = history.purge_finished_jobs
DECIDED: Purge = history.purge_decided_quota_requests
ENDED: Purge = history.purge_ended_keys


@dataclass(frozen=True, slots=True)
class Retention:
    """Days each kind of record is kept (the `BULKHEAD_*_RETENTION_DAYS` settings)."""

    retired_versions: int = 90
    finished_jobs: int = 180
    decided_quota_requests: int = 365
    ended_keys: int = 400

    def __post_init__(self) -> None:
        if self.ended_keys <= KEPT_AFTER_END.days:
            raise ValueError("ended keys are kept longer than the catalog answers for them")


def purge_history(
    db: Database,
    audit: AuditLog,
    retention: Retention,
    now: datetime | None = None,
    *,
    batch: int = BATCH,
) -> dict[str, int]:
    """Delete what is older than its retention; how many rows of each kind went."""
    now = now or utcnow()
    kinds: tuple[tuple[str, str, int, Purge], ...] = (
        ("model_versions", "retired model version", retention.retired_versions, RETIRED),
        ("fine_tuning_jobs", "finished fine-tuning job", retention.finished_jobs, FINISHED),
        ("quota_requests", "decided quota request", retention.decided_quota_requests, DECIDED),
        ("api_keys", "revoked or expired API key", retention.ended_keys, ENDED),
    )
    done: dict[str, int] = {}
    for kind, what, days, purge in kinds:
        gone = _in_batches(db, purge, now - timedelta(days=days), batch)
        for tenant_id, count in sorted(gone.items()):
            audit.emit(
                AuditEvent(
                    action=f"system:{kind}.purge",
                    outcome="success",
                    status=200,
                    tenant_id=tenant_id,
                    resource=tenant_id,
                    reason=f"{count} {what}(s) older than {days} days deleted",
                )
            )
        done[f"{kind}_purged"] = sum(gone.values())
    return done


def _in_batches(db: Database, purge: Purge, before: datetime, batch: int) -> Counter[str]:
    gone: Counter[str] = Counter()
    for _ in range(BATCHES):
        with db.platform_transaction() as session:
            went = purge(session, before, batch)
        gone.update(went)
        if went.total() < batch:
            break
    return gone
