"""Scheduled jobs: what the maintenance loop runs, and the audit event it records."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from bulkhead.app.history import Retention, purge_history
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import AuditLog
from bulkhead.pam import AccessService
from bulkhead.store import Database, repo, signin, usage
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.retention import RetentionStore
from bulkhead.store.schema import utcnow
from bulkhead.store.session_keys import SessionKeyring

# Ended sign-in sessions deleted per transaction, and transactions per maintenance run:
# short transactions, and a run that ends even if sign-ins outpace it (the rest waits
# for the next run; `BULKHEAD_MAX_SESSIONS_PER_PRINCIPAL` bounds the live ones).
SESSION_BATCH = 1_000
SESSION_BATCHES = 100


def purge_sessions(db: Database, now: datetime | None = None, *, batch: int = SESSION_BATCH) -> int:
    """Delete revoked and expired sign-in sessions, `batch` at a time; how many went."""
    now, deleted = now or utcnow(), 0
    for _ in range(SESSION_BATCHES):
        with db.platform_transaction() as session:
            done = signin.purge_sessions(session, now, limit=batch)
        deleted += done
        if done < batch:
            break
    return deleted


def key_event(action: str, tenant_id: str, detail: str) -> AuditEvent:
    """An audit event for a key operation, whoever started it (API call or scheduler)."""
    return AuditEvent(
        action=f"system:{action}",
        outcome="success",
        status=200,
        tenant_id=tenant_id,
        resource=tenant_id,
        reason=detail,
    )


class Maintenance:
    """Scheduled work: KEK rotation when a tenant's period has passed, retention purge,
    usage older than `usage_days` deleted, marking lapsed privileged-access grants
    expired (on the record), deleting ended sign-in sessions, deleting retired model
    versions, finished fine-tuning jobs and decided quota requests past their `history`
    retention (`app.history`), rotating the session key once it is
    `store.session_keys.ROTATE_AFTER` old, and the platform's own keys
    (`app.keys.PlatformKeys.rotate_due`)."""

    def __init__(
        self,
        db: Database,
        keyring: TenantKeyring,
        retention: RetentionStore,
        audit: AuditLog,
        pam: AccessService | None = None,
        *,
        session_keys: SessionKeyring | None = None,
        platform_keys: Callable[[datetime | None], dict[str, int]] | None = None,
        usage_days: int | None = None,
        stalled: Callable[[datetime | None], int] | None = None,
        history: Retention | None = None,
    ):
        """`stalled`: fails vector store files whose ingesting replica stopped."""
        self.db, self.keyring, self.retention, self.audit = db, keyring, retention, audit
        self.pam, self.session_keys, self.platform_keys = pam, session_keys, platform_keys
        self.usage_days, self.stalled = usage_days, stalled
        self.history = history or Retention()

    def run_once(self, now: datetime | None = None) -> dict[str, int]:
        rotated = 0
        with self.db.platform_transaction() as session:
            tenants = repo.list_tenants(session)
        for tenant in tenants:
            if self.keyring.due(tenant.id, tenant.config.kek_rotation_days, now):
                self.keyring.rotate(tenant.id, reason="scheduled")
                rotated += 1
        purged = self.retention.purge(now)
        if purged:
            self.audit.emit(
                AuditEvent(
                    action="system:retention.purge",
                    outcome="success",
                    status=200,
                    reason=f"{purged} expired exchange(s) deleted",
                )
            )
        expired = self.pam.expire_due() if self.pam is not None else 0
        keys = self.session_keys is not None and self.session_keys.rotate_if_due(now)
        done = {"rotated": rotated, "purged": purged, "expired": expired, "session_keys": int(keys)}
        done["usage_purged"] = self._purge_usage([t.id for t in tenants], now)
        done["sessions_purged"] = purge_sessions(self.db, now)
        done |= purge_history(self.db, self.audit, self.history, now)
        done["vector_files_stalled"] = self.stalled(now) if self.stalled is not None else 0
        return done | (self.platform_keys(now) if self.platform_keys is not None else {})

    def _purge_usage(self, tenant_ids: list[str], now: datetime | None) -> int:
        if self.usage_days is None:
            return 0
        before = (now.timestamp() if now is not None else time.time()) - self.usage_days * 86400
        with self.db.platform_transaction() as session:
            deleted = usage.purge(session, tenant_ids, before)
        if deleted:
            reason = f"{deleted} hourly usage row(s) older than {self.usage_days} days deleted"
            self.audit.emit(
                AuditEvent(
                    action="system:usage.purge", outcome="success", status=200, reason=reason
                )
            )
        return deleted
