"""Access requests and the grants they yield, kept in the platform's `access_requests` table.

A request names one privileged action and one target (a tenant's name, or
"platform" for platform-wide settings).  Its life:

    pending ──approve (another platform admin)──▶ approved ──use (single-use)──▶ used
       │                                             │
       ├──deny──▶ denied                             └──expires_at passes──▶ expired
       └──unanswered for a day──▶ expired

Break-glass skips the approval: the request is approved when made, and the
alert goes out at once.  Each step emits its own audit event (`pam.*`), in
addition to the request's event that the gateway writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bulkhead.audit.events import AuditEvent
from bulkhead.domain import Role, TenantContext
from bulkhead.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bulkhead.store import Database, repo
from bulkhead.store.schema import AccessRequestRow, utcnow

log = logging.getLogger("bulkhead.pam")

PLATFORM_TARGET = "platform"
MIN_REASON = 10
MAX_REASON = 1000
MAX_DURATION_S = 4 * 3600
MAX_BREAK_GLASS_S = 3600
PENDING_TTL = timedelta(hours=24)


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    USED = "used"


@dataclass(frozen=True, slots=True)
class Privilege:
    """How a privileged action is granted: for one use or for the window; on a tenant or not.

    `or_platform`: a tenant-scoped action whose target may also be "platform",
    every tenant at once (reading the whole audit log).  `principal_scoped`:
    the target is a platform principal's name (which may not exist yet: the
    one a grant lets its holder create).  `break_glass`: whether break-glass may
    stand in for the approval; never for what adds to who holds a platform role,
    or one alerted emergency would leave a lasting second admin behind.
    """

    single_use: bool
    tenant_scoped: bool
    or_platform: bool = False
    principal_scoped: bool = False
    break_glass: bool = True


# The actions a grant names (`bulkhead.admin.effects` says which routes need
# one).  Destructive ones are single-use: one approval, one deletion.
PRIVILEGED: Mapping[str, Privilege] = {
    "admin:tenants.delete": Privilege(single_use=True, tenant_scoped=True),
    "admin:kms.retire": Privilege(single_use=True, tenant_scoped=True),
    "admin:kms.platform.retire": Privilege(single_use=True, tenant_scoped=False),
    "admin:audit.keys.rotate": Privilege(single_use=True, tenant_scoped=False),
    "admin:kms.ca.rotate": Privilege(single_use=True, tenant_scoped=False),
    # A platform admin's reads of the audit log (events, bundles, proofs): one
    # tenant's view, or the whole log ("platform").
    "admin:audit.export.get": Privilege(single_use=False, tenant_scoped=True, or_platform=True),
    # Credentials that act inside a tenant, past its first admin (`admin/bootstrap.py`).
    "admin:keys.create": Privilege(single_use=False, tenant_scoped=True),
    "admin:principals.password.set": Privilege(single_use=False, tenant_scoped=True),
    "admin:tenants.idp.set": Privilege(single_use=False, tenant_scoped=True),
    # Raising a tenant's limits above its tier's defaults, by approving a quota
    # request or by setting its limits (`admin/quotas.py`, `admin/limits.py`).
    "admin:quota_requests.approve": Privilege(single_use=True, tenant_scoped=True),
    # Repairing a tenant's own policies (`admin/policies.py`): one approval, one change.
    "admin:policies.update": Privilege(single_use=True, tenant_scoped=True),
    "admin:policies.delete": Privilege(single_use=True, tenant_scoped=True),
    # Who holds a platform role (`admin/platform/operators.py`): one approval, one change of one
    # principal, named by the grant's target.
    **{
        f"admin:platform_principals.{step}": Privilege(
            single_use=True,
            tenant_scoped=False,
            principal_scoped=True,
            break_glass=step in ("disable", "delete"),
        )
        for step in ("create", "roles.set", "disable", "enable", "delete", "keys.create")
    },
}


@dataclass(frozen=True, slots=True)
class AccessRequest:
    id: str
    action: str
    target: str
    target_tenant_id: str | None
    requester_id: str
    reason: str
    duration_s: int
    break_glass: bool
    single_use: bool
    status: Status
    decided_by: str | None
    decision_reason: str | None
    created_at: datetime
    decided_at: datetime | None
    expires_at: datetime | None
    used_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"object": "access_request"}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["status"] = self.status.value
        return out


def _of(row: AccessRequestRow) -> AccessRequest:
    return AccessRequest(
        id=row.id,
        action=row.action,
        target=row.target,
        target_tenant_id=row.target_tenant_id,
        requester_id=row.requester_id,
        reason=row.reason,
        duration_s=row.duration_s,
        break_glass=row.break_glass,
        single_use=row.single_use,
        status=Status(row.status),
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        created_at=row.created_at,
        decided_at=row.decided_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


def _reason(text: str, param: str = "reason") -> str:
    text = text.strip()
    if not MIN_REASON <= len(text) <= MAX_REASON:
        raise InvalidRequest(
            f"Give a reason of {MIN_REASON} to {MAX_REASON} characters: it goes on the record.",
            param=param,
        )
    return text


def _platform_admin(ctx: TenantContext) -> str:
    # The role table already keeps everyone else out; this holds if it were misconfigured.
    if ctx.role is not Role.PLATFORM_ADMIN:
        raise PermissionDenied("Only platform admins take part in privileged access.")
    return ctx.principal.id


def refusal(action: str, target: str) -> PermissionDenied:
    return PermissionDenied(
        f"'{action}' on '{target}' is a privileged action and needs a live grant: run "
        f"`bulkhead access request --action {action} --target {target} --reason ...` and "
        "have a different platform admin approve it.",
        code="privileged_access_required",
    )


class AccessService:
    """Requests, decisions and grants; every method is blocking (call it off the event loop)."""

    def __init__(
        self,
        db: Database,
        *,
        emit: Callable[[AuditEvent], object],
        alert: Callable[[dict[str, Any]], None] | None = None,
        now: Callable[[], datetime] = utcnow,
    ):
        self.db, self.emit, self.alert, self.now = db, emit, alert, now

    # Requests and decisions -----------------------------------------------------------------

    def create(
        self,
        ctx: TenantContext,
        *,
        action: str,
        target: str,
        reason: str,
        duration_s: int,
        break_glass: bool = False,
    ) -> AccessRequest:
        requester = _platform_admin(ctx)
        privilege = PRIVILEGED.get(action)
        if privilege is None:
            known = ", ".join(sorted(PRIVILEGED))
            raise InvalidRequest(f"'{action}' needs no grant; privileged: {known}.", param="action")
        reason = _reason(reason)
        if break_glass and not privilege.break_glass:
            raise PermissionDenied(
                f"Break-glass cannot stand in for another admin's approval of '{action}': "
                "it would leave a lasting platform role behind. Ask another admin to approve.",
                policy="pam.no-break-glass",
            )
        longest = MAX_BREAK_GLASS_S if break_glass else MAX_DURATION_S
        if not 1 <= duration_s <= longest:
            raise InvalidRequest(f"'duration_s' must be 1 to {longest}.", param="duration_s")
        now = self.now()
        with self.db.platform_transaction() as session:
            row = AccessRequestRow(
                id=repo.new_id("acr"),
                action=action,
                target=target,
                target_tenant_id=self._target_tenant(session, privilege, target),
                requester_id=requester,
                reason=reason,
                duration_s=duration_s,
                break_glass=break_glass,
                single_use=privilege.single_use,
                status=Status.APPROVED if break_glass else Status.PENDING,
                decided_by=requester if break_glass else None,
                decision_reason="break-glass" if break_glass else None,
                created_at=now,
                decided_at=now if break_glass else None,
                expires_at=now + timedelta(seconds=duration_s) if break_glass else None,
                used_at=None,
            )
            session.add(row)
            session.flush()
            made = _of(row)
        self.emit(self._event("request.create", made, requester))
        if break_glass:
            self._break_glass(made)
        return made

    @staticmethod
    def _target_tenant(session: Session, privilege: Privilege, target: str) -> str | None:
        if privilege.or_platform and target == PLATFORM_TARGET:
            return None
        if privilege.principal_scoped:
            # `NAME`, or `NAME:platform_admin` for a grant that gives the admin role.
            name = target.removesuffix(f":{Role.PLATFORM_ADMIN.value}")
            if not repo.PRINCIPAL_NAME.fullmatch(name):
                raise InvalidRequest("Name the platform principal as the target.", param="target")
            return None
        if not privilege.tenant_scoped:
            if target != PLATFORM_TARGET:
                raise InvalidRequest(
                    f"This action's target is '{PLATFORM_TARGET}'.", param="target"
                )
            return None
        return repo.get_tenant(session, target).id

    def approve(self, ctx: TenantContext, request_id: str) -> AccessRequest:
        approver = _platform_admin(ctx)
        now = self.now()
        with self.db.platform_transaction() as session:
            row = self._pending(session, request_id, now)
            if row.requester_id == approver:
                # On the record where the request is (the target tenant's view too).
                refused = self._event("request.self_approval", _of(row), approver, "refused")
                self.emit(replace(refused, outcome="failure", status=403))
                raise PermissionDenied(
                    "You cannot approve your own access request: a different platform admin "
                    "must approve it.",
                    code="self_approval",
                )
            row.status = Status.APPROVED
            row.decided_by, row.decided_at = approver, now
            row.expires_at = now + timedelta(seconds=row.duration_s)
            session.flush()
            approved = _of(row)
        self.emit(self._event("request.approve", approved, approver))
        return approved

    def deny(self, ctx: TenantContext, request_id: str, reason: str) -> AccessRequest:
        """Refuse a pending request; its requester may withdraw it the same way."""
        decider = _platform_admin(ctx)
        reason = _reason(reason)
        now = self.now()
        with self.db.platform_transaction() as session:
            row = self._pending(session, request_id, now)
            row.status = Status.DENIED
            row.decided_by, row.decided_at, row.decision_reason = decider, now, reason
            session.flush()
            denied = _of(row)
        self.emit(self._event("request.deny", denied, decider, detail=reason))
        return denied

    def _pending(self, session: Session, request_id: str, now: datetime) -> AccessRequestRow:
        row = session.get(AccessRequestRow, request_id, with_for_update=True)
        if row is None:
            raise NotFound(f"No access request '{request_id}'.")
        if row.status == Status.PENDING and row.created_at + PENDING_TTL <= now:
            raise Conflict("The request went unanswered for too long and has expired.")
        if row.status != Status.PENDING:
            raise Conflict(f"The request is {row.status} and can no longer be decided.")
        return row

    def get(self, request_id: str) -> AccessRequest:
        self.expire_due()
        with self.db.platform_transaction() as session:
            row = session.get(AccessRequestRow, request_id)
            if row is None:
                raise NotFound(f"No access request '{request_id}'.")
            return _of(row)

    def list(self, status: str | None = None) -> list[AccessRequest]:
        if status is not None and status not in set(Status):
            raise InvalidRequest(f"Unknown status '{status}'.", param="status")
        self.expire_due()
        query = select(AccessRequestRow).order_by(AccessRequestRow.created_at.desc())
        if status is not None:
            query = query.where(AccessRequestRow.status == status)
        with self.db.platform_transaction() as session:
            return [_of(row) for row in session.scalars(query.limit(1000))]

    # Grants ---------------------------------------------------------------------------------

    def use(self, ctx: TenantContext, action: str, target: str) -> AccessRequest:
        """The caller's live grant for (action, target), consumed if single-use; or refuse."""
        now = self.now()
        query = (
            select(AccessRequestRow)
            .where(
                AccessRequestRow.requester_id == ctx.principal.id,
                AccessRequestRow.action == action,
                AccessRequestRow.target == target,
                AccessRequestRow.status == Status.APPROVED,
                AccessRequestRow.expires_at > now,
            )
            .order_by(AccessRequestRow.expires_at)
        )
        with self.db.platform_transaction() as session:
            grant = next(
                (g for g in map(_of, session.scalars(query)) if self._claim(session, g, now)),
                None,
            )
        if grant is None:
            raise refusal(action, target)
        if grant.single_use:
            grant = replace(grant, status=Status.USED, used_at=now)
        self.emit(self._event("grant.use", grant, ctx.principal.id))
        return grant

    def live_grants(self, principal_id: str, action: str | None = None) -> frozenset[str]:
        """Ids of the tenants the principal holds a live grant on (for `action`, if given).

        What the Cedar policy `platform.tenant-isolation` reads as `context.grants`:
        the admin router passes it in for a privileged route's target tenant.
        Nothing is consumed here; `use` does that.
        """
        query = select(AccessRequestRow.target_tenant_id).where(
            AccessRequestRow.requester_id == principal_id,
            AccessRequestRow.status == Status.APPROVED,
            AccessRequestRow.expires_at > self.now(),
            AccessRequestRow.target_tenant_id.is_not(None),
        )
        if action is not None:
            query = query.where(AccessRequestRow.action == action)
        with self.db.platform_transaction() as session:
            return frozenset(t for t in session.scalars(query) if t is not None)

    @staticmethod
    def _claim(session: Session, grant: AccessRequest, now: datetime) -> bool:
        if not grant.single_use:
            return True
        # Conditional on the status, so that two concurrent uses cannot both win.
        claimed = session.execute(
            update(AccessRequestRow)
            .where(AccessRequestRow.id == grant.id, AccessRequestRow.status == Status.APPROVED)
            .values(status=Status.USED, used_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(claimed, "rowcount", 0) == 1)

    def release(self, grant: AccessRequest) -> None:
        """Give back a single-use grant whose action failed, so it can be retried in its window."""
        if not grant.single_use:
            return
        with self.db.platform_transaction() as session:
            session.execute(
                update(AccessRequestRow)
                .where(AccessRequestRow.id == grant.id, AccessRequestRow.status == Status.USED)
                .values(status=Status.APPROVED, used_at=None)
                .execution_options(synchronize_session=False)
            )
        self.emit(self._event("grant.release", grant, grant.requester_id, "the action failed"))

    def expire_due(self) -> int:
        """Mark grants past their end, and requests unanswered too long, as expired."""
        now = self.now()
        stale = (
            (AccessRequestRow.status == Status.APPROVED) & (AccessRequestRow.expires_at <= now)
        ) | (
            (AccessRequestRow.status == Status.PENDING)
            & (AccessRequestRow.created_at <= now - PENDING_TTL)
        )
        expired: list[AccessRequest] = []
        with self.db.platform_transaction() as session:
            for row in session.scalars(select(AccessRequestRow).where(stale)):
                changed = session.execute(
                    update(AccessRequestRow)
                    .where(AccessRequestRow.id == row.id, AccessRequestRow.status == row.status)
                    .values(status=Status.EXPIRED)
                    .execution_options(synchronize_session=False)
                )
                if getattr(changed, "rowcount", 0) == 1:
                    expired.append(_of(row))
        for gone in expired:
            step = "grant.expire" if gone.status is Status.APPROVED else "request.expire"
            self.emit(self._event(step, replace(gone, status=Status.EXPIRED), None, "expired"))
        return len(expired)

    # The record and the alarm ---------------------------------------------------------------

    def _event(
        self, step: str, request: AccessRequest, principal_id: str | None, detail: str = ""
    ) -> AuditEvent:
        why = (detail or request.reason)[:200]
        return AuditEvent(
            action=f"pam.{step}",
            outcome="success",
            status=200,
            tenant_id=request.target_tenant_id,
            principal_id=principal_id,
            resource=request.id,
            reason=f"{request.action} on {request.target}: {why}",
        )

    def _break_glass(self, request: AccessRequest) -> None:
        log.critical(
            "BREAK-GLASS: principal %s took %s on %s until %s (request %s): %s",
            request.requester_id,
            request.action,
            request.target,
            request.expires_at.isoformat() if request.expires_at else "-",
            request.id,
            request.reason,
        )
        self.emit(self._event("break_glass", request, request.requester_id))
        if self.alert is not None:
            self.alert({"event": "pam.break_glass", **request.to_json()})
