"""Tenants and principals."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import false, func, select, text, update
from sqlalchemy.orm import Session

from bulkhead.domain import (
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantConfig,
    TenantStatus,
    Tier,
)
from bulkhead.errors import Conflict, InvalidRequest, NotFound
from bulkhead.store.bounds import bounds_of
from bulkhead.store.repo._common import (
    PRINCIPAL_NAME,
    TENANT_NAME,
    _flush,
    bump_version,
    new_id,
)
from bulkhead.store.schema import (
    SHARED_SCOPE,
    PrincipalRow,
    TenantRow,
    utcnow,
)

# Tenants ---------------------------------------------------------------------------------


def tenant_of(row: TenantRow) -> Tenant:
    return Tenant(
        id=row.id,
        name=row.name,
        tier=Tier(row.tier),
        status=TenantStatus(row.status),
        quotas=dict(row.quotas),
        created_at=row.created_at,
        config=TenantConfig.from_json(row.config or {}),
        attributes=dict(row.attributes or {}),
    )


def create_tenant(session: Session, name: str, tier: Tier) -> Tenant:
    if not TENANT_NAME.fullmatch(name):
        raise InvalidRequest(
            "tenant name must be 1-63 lowercase letters, digits or '-', starting with a "
            "letter or digit",
            param="name",
        )
    if session.execute(select(TenantRow.id).where(TenantRow.name == name)).first():
        raise Conflict(f"tenant '{name}' already exists")
    now = utcnow()
    row = TenantRow(
        id=new_id("ten"),
        name=name,
        tier=tier.value,
        status=TenantStatus.ACTIVE.value,
        quotas={},
        config={},
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    _flush(session, f"tenant '{name}'")
    bump_version(session)
    return tenant_of(row)


def _tenant_row(session: Session, name: str) -> TenantRow:
    row = session.execute(select(TenantRow).where(TenantRow.name == name)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"tenant '{name}' not found")
    return row


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Lock the tenant's row until the transaction ends: what it counts, it counts alone.

    Call it before reading what the lock protects.  PostgreSQL locks the row; SQLite
    has no row locks, so there an update that matches nothing takes the database's
    write lock (and starts the transaction on the newest snapshot): a concurrent
    writer waits for this one to end, then reads what it committed.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(TenantRow).where(false()).values(id=TenantRow.id))
        return
    session.execute(select(TenantRow.id).where(TenantRow.id == tenant_id).with_for_update())


# pg_advisory_xact_lock key: "bulkhead/platform/admins" folded into a bigint.
_PLATFORM_LOCK = int.from_bytes(
    hashlib.sha256(b"bulkhead/platform/admins").digest()[:8], "big", signed=True
)


def lock_platform_principals(session: Session) -> None:
    """The platform's principals' `lock_tenant`: held until the transaction ends, taken
    before reading what it protects (their roles, their keys), so a change of roles and a
    key made for the principal run one after the other.  PostgreSQL: a transaction-scoped
    advisory lock; SQLite: its write lock, taken by an update that matches nothing (the
    transaction then reads the newest snapshot)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PLATFORM_LOCK})
    else:
        session.execute(update(PrincipalRow).where(false()).values(id=PrincipalRow.id))


def get_tenant(session: Session, name: str) -> Tenant:
    return tenant_of(_tenant_row(session, name))


def get_tenant_by_id(session: Session, tenant_id: str) -> Tenant:
    row = session.get(TenantRow, tenant_id)
    if row is None:
        raise NotFound("tenant not found")
    return tenant_of(row)


def list_tenants(session: Session) -> list[Tenant]:
    rows = session.execute(select(TenantRow).order_by(TenantRow.name)).scalars()
    return [tenant_of(r) for r in rows]


def update_tenant(
    session: Session, name: str, *, status: TenantStatus | None = None, tier: Tier | None = None
) -> Tenant:
    """Change a tenant's status or tier; the catalog change moves its workers
    (`app.application`)."""
    row = _tenant_row(session, name)
    if status is not None:
        row.status = status.value
    if tier is not None:
        row.tier = tier.value
    row.updated_at = utcnow()
    bump_version(session)
    return tenant_of(row)


def set_tenant_status(session: Session, name: str, status: TenantStatus) -> Tenant:
    return update_tenant(session, name, status=status)


# Principals ------------------------------------------------------------------------------


def principal_of(row: PrincipalRow) -> Principal:
    return Principal(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        kind=PrincipalKind(row.kind),
        roles=frozenset(Role(r) for r in row.roles),
        attributes=dict(row.attributes or {}),
        email=row.email,
        disabled=row.disabled_at is not None,
    )


def create_principal(
    session: Session,
    tenant_id: str | None,
    name: str,
    kind: PrincipalKind,
    roles: Iterable[Role],
) -> Principal:
    if not PRINCIPAL_NAME.fullmatch(name):
        raise InvalidRequest("principal name has invalid characters", param="name")
    if tenant_id is not None:
        lock_tenant(session, tenant_id)
        held = session.execute(
            select(func.count()).select_from(PrincipalRow).where(PrincipalRow.scope == tenant_id)
        ).scalar_one()
        # Every replica's catalog holds every principal and reloads them all on each
        # control-plane write (`store/catalog.py`): one tenant may not grow that unbounded.
        if held >= bounds_of(session).principals:
            raise Conflict(
                f"The tenant has {held} principals, the most BULKHEAD_TENANT_MAX_PRINCIPALS "
                "allows: remove some first, or ask the operator to raise it."
            )
    row = PrincipalRow(
        id=new_id("prn"),
        scope=tenant_id or SHARED_SCOPE,
        tenant_id=tenant_id,
        name=name,
        kind=kind.value,
        roles=sorted(r.value for r in roles),
        created_at=utcnow(),
    )
    session.add(row)
    _flush(session, f"principal '{name}'")
    bump_version(session)
    return principal_of(row)


def list_principals(session: Session, tenant_id: str | None) -> list[Principal]:
    scope = tenant_id or SHARED_SCOPE
    rows = session.execute(
        select(PrincipalRow).where(PrincipalRow.scope == scope).order_by(PrincipalRow.name)
    ).scalars()
    return [principal_of(r) for r in rows]


def get_principal(session: Session, tenant_id: str | None, name: str) -> Principal:
    row = session.execute(
        select(PrincipalRow).where(
            PrincipalRow.scope == (tenant_id or SHARED_SCOPE), PrincipalRow.name == name
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"principal '{name}' not found")
    return principal_of(row)
