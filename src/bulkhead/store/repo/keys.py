"""API keys and their limits (a key's within its tenant's, a tenant's within its tier's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from bulkhead.domain import (
    ApiKey,
    Principal,
    PrincipalKind,
    Role,
    Tenant,
)
from bulkhead.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bulkhead.identity import issue_key
from bulkhead.limits.policy import looser, tightest
from bulkhead.store.bounds import bounds_of
from bulkhead.store.repo._common import (
    _flush,
    bump_version,
)
from bulkhead.store.repo.tenants import (
    _tenant_row,
    create_principal,
    lock_platform_principals,
    lock_tenant,
    tenant_of,
)
from bulkhead.store.schema import (
    ApiKeyRow,
    PrincipalRow,
    utcnow,
)

# Every replica's catalog holds the keys it may have to answer for and reloads them all on
# each control-plane write (`store/catalog.py`): those usable, and those revoked or expired
# within `KEPT_AFTER_END` (answered "revoked or expired"; older ones as unknown keys, the same
# 401).  One tenant holds at most `TenantBounds.keys` of them (`BULKHEAD_TENANT_MAX_KEYS`),
# revoked ones included, so no tenant grows every replica's catalog without bound by making
# (and revoking) keys.
KEPT_AFTER_END = timedelta(days=30)

# API keys --------------------------------------------------------------------------------


def _kept(now: datetime) -> ColumnElement[bool]:
    """The keys the catalog holds at `now`."""
    since = now - KEPT_AFTER_END
    return or_(ApiKeyRow.revoked_at.is_(None), ApiKeyRow.revoked_at > since) & or_(
        ApiKeyRow.expires_at.is_(None), ApiKeyRow.expires_at > since
    )


def _room_for_a_key(session: Session, tenant_id: str) -> None:
    lock_tenant(session, tenant_id)
    held = session.execute(
        select(func.count())
        .select_from(ApiKeyRow)
        .where(ApiKeyRow.tenant_id == tenant_id, _kept(utcnow()))
    ).scalar_one()
    if held >= bounds_of(session).keys:
        raise Conflict(
            f"The tenant holds {held} API keys (revoked or expired ones for "
            f"{KEPT_AFTER_END.days} days), the most BULKHEAD_TENANT_MAX_KEYS allows: remove "
            "principals with keys it no longer needs, or ask the operator to raise it."
        )


def _still_holds(session: Session, principal: Principal, role: Role) -> None:
    """The principal's roles as committed now, under its tenant's lock (or, for the
    platform's, `lock_platform_principals`): a caller checked them before it
    (`rules.holds`), and a demotion or disabling committed since revoked the keys in a
    dropped role without seeing this one."""
    row = session.execute(
        select(PrincipalRow.roles, PrincipalRow.disabled_at).where(PrincipalRow.id == principal.id)
    ).one_or_none()
    if row is None:
        raise NotFound("principal not found")
    if row.disabled_at is not None:
        raise Conflict("The principal is disabled.")
    if role.value not in row.roles:
        raise Conflict(f"The principal no longer holds the {role.value} role.")


def key_of(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant_id=row.tenant_id,
        principal_id=row.principal_id,
        role=Role(row.role),
        secret_hash=row.secret_hash,
        models=frozenset(row.models) if row.models is not None else None,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        name=row.name,
        created_at=row.created_at,
        limits=_frozen(tightest(row.limits_floor, row.limits)),
        limits_floor=_frozen(row.limits_floor),
    )


def _frozen(limits: Mapping[str, int] | None) -> Mapping[str, int] | None:
    return MappingProxyType(dict(limits)) if limits else None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    secret: str

    def __repr__(self) -> str:
        return f"CreatedKey(key_id={self.key.id!r})"


def create_key(
    session: Session,
    tenant_id: str | None,
    *,
    role: Role,
    principal: Principal | None = None,
    models: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    name: str = "",
    limits: Mapping[str, int] | None = None,
    limits_floor: Mapping[str, int] | None = None,
) -> CreatedKey:
    """Issue a key; without a principal, a service account is created for it.

    `limits` are the key's own; `limits_floor` those its issuer holds it to.
    """
    # The lock first, then the principal's roles: the order a change of roles takes them in.
    if tenant_id is not None:
        _room_for_a_key(session, tenant_id)
    elif principal is not None:
        lock_platform_principals(session)
    if principal is not None:
        _still_holds(session, principal, role)
    issued = issue_key()
    if principal is None:
        principal = create_principal(
            session, tenant_id, f"key-{issued.key_id}", PrincipalKind.SERVICE, [role]
        )
    if principal.tenant_id != tenant_id:
        raise NotFound("principal not found")
    row = ApiKeyRow(
        id=issued.key_id,
        tenant_id=tenant_id,
        principal_id=principal.id,
        role=role.value,
        secret_hash=issued.secret_hash,
        models=sorted(set(models)) if models is not None else None,
        limits=dict(limits) if limits else None,
        limits_floor=dict(limits_floor) if limits_floor else None,
        name=name,
        expires_at=expires_at,
        revoked_at=None,
        created_at=utcnow(),
    )
    session.add(row)
    _flush(session, "key")
    bump_version(session)
    return CreatedKey(key=key_of(row), secret=issued.secret)


def list_keys(session: Session, tenant_id: str | None) -> list[ApiKey]:
    query = select(ApiKeyRow).where(
        ApiKeyRow.tenant_id.is_(None) if tenant_id is None else ApiKeyRow.tenant_id == tenant_id
    )
    return [key_of(r) for r in session.execute(query.order_by(ApiKeyRow.created_at)).scalars()]


def key_tenant(session: Session, key_id: str) -> str | None:
    """The tenant a key belongs to; for the platform's own lookup by key id."""
    row = session.get(ApiKeyRow, key_id)
    if row is None:
        raise NotFound(f"key '{key_id}' not found")
    return row.tenant_id


def revoke_key(session: Session, tenant_id: str | None, key_id: str) -> ApiKey:
    row = session.get(ApiKeyRow, key_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"key '{key_id}' not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        bump_version(session)
    return key_of(row)


def set_key_limits(
    session: Session,
    tenant_id: str | None,
    key_id: str,
    changes: Mapping[str, int | None],
    *,
    floor: bool = False,
    bound: Mapping[str, int] | None = None,
) -> ApiKey:
    """Merge `changes` into a key's own limits, or (`floor`, the platform's) into its floor.

    A null value removes that limit from the layer.  The key's own limits only
    tighten its floor: a value above it is refused.  `bound` is the limits of
    the key that makes the change: no limit it changes may end looser than
    its own (a key issues nothing broader than itself).
    """
    row = session.get(ApiKeyRow, key_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"key '{key_id}' not found")
    if not floor:
        _within_floor(row.limits_floor or {}, changes)
        _within_bound(bound or {}, row.limits_floor or {}, changes)
    merged = {**dict((row.limits_floor if floor else row.limits) or {}), **changes}
    kept = {k: v for k, v in merged.items() if v is not None} or None
    if floor:
        row.limits_floor = kept
    else:
        row.limits = kept
    bump_version(session)
    return key_of(row)


def _within_floor(bounds: Mapping[str, int], changes: Mapping[str, int | None]) -> None:
    for name, value in changes.items():
        # Removing one of the key's own limits leaves the floor's in force.
        if value is not None and looser(value, bounds.get(name)):
            raise InvalidRequest(
                f"The platform holds this key to {name} = {bounds[name]}; you may only lower it.",
                param=name,
            )


def _within_bound(
    bound: Mapping[str, int], floor: Mapping[str, int], changes: Mapping[str, int | None]
) -> None:
    for name, value in changes.items():
        # What the key is held to once changed: the tighter of the new value and its floor.
        held = min((v for v in (value, floor.get(name)) if v is not None), default=None)
        if looser(held, bound.get(name)):
            raise PermissionDenied(
                f"Your key is held to {name} = {bound[name]}: you may not give a key more.",
                param=name,
            )


def set_tenant_limits(session: Session, name: str, changes: Mapping[str, object]) -> Tenant:
    """Merge `changes` into the tenant's quotas ("default" drops an override to the tier's)."""
    row = _tenant_row(session, name)
    merged = {**dict(row.quotas or {}), **changes}
    row.quotas = {k: v for k, v in merged.items() if v != "default"}
    bump_version(session)
    return tenant_of(row)


def all_keys(session: Session) -> list[ApiKey]:
    """The keys the catalog holds: usable, or ended within `KEPT_AFTER_END`."""
    rows = session.execute(select(ApiKeyRow).where(_kept(utcnow()))).scalars()
    return [key_of(r) for r in rows]
