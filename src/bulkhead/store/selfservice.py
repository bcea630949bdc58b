"""Tenant self-service records: roles of principals, key rotation, model versions, quota requests.

Like `repo`, every function takes the tenant id and puts it in the query (a
row of another tenant is a `NotFound`), and every change the data plane
depends on bumps the catalog version.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bulkhead.domain import ApiKey, Deployment, DeploymentKind, Principal, Role, Tenant
from bulkhead.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bulkhead.runtime.upstream import ENGINE_OPTION, PEER_ID_OPTION
from bulkhead.store import history, repo
from bulkhead.store.bounds import bounds_of
from bulkhead.store.schema import (
    ApiKeyRow,
    DeploymentRow,
    ModelRow,
    ModelVersionRow,
    PrincipalRow,
    QuotaRequestRow,
    SignInSessionRow,
    TenantRow,
    utcnow,
)

VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# `model@version` names one version explicitly; model names cannot contain '@'.
VERSION_SEPARATOR = "@"
# What a version keeps of its model's deployment: the engine (a vLLM engine gets the
# tenant's cache salt), the mutual-TLS peer and the capacity.  A version cannot drop them.
INHERITED_OPTIONS = (ENGINE_OPTION, PEER_ID_OPTION, "max_in_flight")
# Quota requests of one tenant pending at once, and live versions of one model, are bounded
# by the operator (`store.bounds`): the platform's list shows the newest 1,000 requests of all
# tenants, and each live version is a deployment in every replica's catalog.  All of a
# tenant's versions, retired ones included, are bounded too; the maintenance loop deletes
# old retired versions and decided requests (`store.history`).


# Principals -------------------------------------------------------------------------------


def _principal_row(session: Session, tenant_id: str, name: str) -> PrincipalRow:
    row = session.execute(
        select(PrincipalRow).where(PrincipalRow.scope == tenant_id, PrincipalRow.name == name)
    ).scalar_one_or_none()
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"principal '{name}' not found")
    return row


def _lock_principals(session: Session, tenant_id: str) -> None:
    """The tenant's lock, before a principal's roles or keys are read to be changed: two
    admins demoting each other are counted one after the other (`_keep_an_admin`), and a
    key rotated meanwhile (`rotate_key`, which takes the same lock first) is either revoked
    with its role or rotated after the change, and then refused as revoked."""
    repo.lock_tenant(session, tenant_id)


def _keep_an_admin(session: Session, tenant_id: str, row: PrincipalRow, roles: set[str]) -> None:
    """Refuse a change that would leave the tenant with no tenant admin."""
    admin = Role.TENANT_ADMIN.value
    if admin not in row.roles or admin in roles:
        return
    others = session.execute(
        select(PrincipalRow.roles).where(PrincipalRow.scope == tenant_id, PrincipalRow.id != row.id)
    ).scalars()
    if not any(admin in r for r in others):
        raise Conflict("The tenant would be left without a tenant admin.")


def _not_self(actor: Principal, row: PrincipalRow) -> None:
    if actor.id == row.id:
        raise PermissionDenied("You cannot change or remove your own principal.")


def revoke_beyond(session: Session, principal_id: str, roles: set[str]) -> list[str]:
    """Revoke the principal's keys and sessions that act in a role outside `roles` (all of
    them for an empty set); return the revoked keys' ids.  Tenant and platform principals
    alike (`store/operators.py`)."""
    now = utcnow()
    keys = session.execute(
        select(ApiKeyRow).where(
            ApiKeyRow.principal_id == principal_id, ApiKeyRow.revoked_at.is_(None)
        )
    ).scalars()
    revoked = []
    for key in keys:
        if key.role not in roles:
            key.revoked_at = now
            revoked.append(key.id)
    session.execute(
        update(SignInSessionRow)
        .where(
            SignInSessionRow.principal_id == principal_id,
            SignInSessionRow.revoked_at.is_(None),
            SignInSessionRow.role.not_in(roles) if roles else SignInSessionRow.id.is_not(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return revoked


def set_principal_roles(
    session: Session, tenant_id: str, name: str, roles: Iterable[Role], *, actor: Principal
) -> Principal:
    """Replace a principal's roles; its keys and sessions in a dropped role are revoked."""
    _lock_principals(session, tenant_id)
    row = _principal_row(session, tenant_id, name)
    _not_self(actor, row)
    wanted = {r.value for r in roles}
    _keep_an_admin(session, tenant_id, row, wanted)
    row.roles = sorted(wanted)
    revoke_beyond(session, row.id, wanted)
    session.flush()
    repo.bump_version(session)
    return repo.principal_of(row)


def delete_principal(session: Session, tenant_id: str, name: str, *, actor: Principal) -> list[str]:
    """Remove a principal; its keys are revoked first.  Returns the revoked key ids."""
    _lock_principals(session, tenant_id)
    row = _principal_row(session, tenant_id, name)
    _not_self(actor, row)
    _keep_an_admin(session, tenant_id, row, set())
    revoked = revoke_beyond(session, row.id, set())
    session.flush()
    session.delete(row)  # Keys, credentials and sessions go with it (ON DELETE CASCADE).
    session.flush()
    repo.bump_version(session)
    return revoked


# A tenant's first admin ---------------------------------------------------------------------


def bootstrap_open(session: Session, name: str) -> bool:
    """Whether the tenant has yet to get its first admin (`bulkhead.admin.bootstrap`)."""
    row = session.execute(select(TenantRow).where(TenantRow.name == name)).scalar_one_or_none()
    return row is not None and row.admin_bootstrapped_at is None


def claim_bootstrap(session: Session, tenant_id: str) -> bool:
    """Mark the tenant's first admin as given; False if it already was (only one call wins)."""
    claimed = session.execute(
        update(TenantRow)
        .where(TenantRow.id == tenant_id, TenantRow.admin_bootstrapped_at.is_(None))
        .values(admin_bootstrapped_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(claimed, "rowcount", 0) == 1)


# Keys -------------------------------------------------------------------------------------

MAX_GRACE_S = 24 * 3600


def rotate_key(
    session: Session,
    tenant_id: str,
    key_id: str,
    *,
    grace_s: int = 0,
    check_key: Callable[[ApiKey], None] | None = None,
    now: datetime | None = None,
) -> repo.CreatedKey:
    """A new secret for the same principal, role, models, expiry, limits and name; the old ends.

    With `grace_s` the old key keeps working that long (at most a day, and never
    past its own expiry); without, it is revoked at once.  `check_key` refuses
    a key the rotator may not issue today (a role above its own, a broader key).
    """
    if not 0 <= grace_s <= MAX_GRACE_S:
        raise InvalidRequest(f"'grace_s' must be 0 to {MAX_GRACE_S}.", param="grace_s")
    now = now or utcnow()
    # The tenant first, then the key: the order a demotion or removal takes them in
    # (`_keep_an_admin`, then `revoke_beyond`), and on SQLite the key read after the lock.
    repo.lock_tenant(session, tenant_id)
    row = session.get(ApiKeyRow, key_id, with_for_update=True)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"key '{key_id}' not found")
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise Conflict("The key is revoked or expired; create a new one instead.")
    owner = session.get(PrincipalRow, row.principal_id)
    if owner is None:
        raise NotFound(f"key '{key_id}' not found")
    old = repo.key_of(row)
    if check_key is not None:
        check_key(old)  # The rotator must be allowed to issue this key today.
    created = repo.create_key(
        session,
        tenant_id,
        role=old.role,
        principal=repo.principal_of(owner),
        models=sorted(old.models) if old.models is not None else None,
        expires_at=old.expires_at,
        name=old.name,
        limits=row.limits,
        limits_floor=row.limits_floor,
    )
    if grace_s:
        end = now + timedelta(seconds=grace_s)
        row.expires_at = min(end, row.expires_at) if row.expires_at else end
    else:
        row.revoked_at = now
    session.flush()
    repo.bump_version(session)
    return created


# Model versions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelVersion:
    id: str
    model_id: str
    model: str
    version: str
    deployment: Deployment
    created_at: datetime
    retired_at: datetime | None

    @property
    def live(self) -> bool:
        return self.retired_at is None


def _version_of(row: ModelVersionRow, model: str) -> ModelVersion:
    deployment = Deployment(
        id=row.id,
        model_id=row.model_id,
        kind=DeploymentKind(row.kind),
        base_url=row.base_url,
        upstream_model=row.upstream_model,
        credential=row.credential,
        timeout_s=row.timeout_s,
        chosen_by_tenant=True,
    )
    return ModelVersion(
        row.id, row.model_id, model, row.version, deployment, row.created_at, row.retired_at
    )


def _private_model(session: Session, tenant_id: str, name: str) -> ModelRow:
    row = session.execute(
        select(ModelRow).where(ModelRow.scope == tenant_id, ModelRow.name == name)
    ).scalar_one_or_none()
    if row is None or row.owner_tenant_id != tenant_id:
        raise NotFound(f"model '{name}' not found")
    return row


def require_own_model(session: Session, tenant_id: str, name: str) -> None:
    """Refuse (not found) a model that is not one of the tenant's private models."""
    _private_model(session, tenant_id, name)


def inherited(base: Deployment, version: Deployment) -> Deployment:
    """The version's deployment with its model's safety options (`INHERITED_OPTIONS`)."""
    options = {k: v for k, v in base.options.items() if k in INHERITED_OPTIONS}
    return dataclasses.replace(version, options=options)


def _base_options(session: Session, model_id: str) -> dict[str, str]:
    row = session.execute(
        select(DeploymentRow.options).where(DeploymentRow.model_id == model_id)
    ).scalar_one_or_none()
    return {str(k): str(v) for k, v in (row or {}).items()}


def publish_version(
    session: Session, tenant_id: str, model: str, version: str, spec: repo.DeploymentSpec
) -> ModelVersion:
    if not VERSION_NAME.fullmatch(version):
        raise InvalidRequest("version has invalid characters", param="version")
    if spec.kind is not DeploymentKind.UPSTREAM:
        raise InvalidRequest("A model version is served by an upstream.", param="upstream")
    repo.lock_tenant(session, tenant_id)  # before the model is read: it is still there
    owner = _private_model(session, tenant_id, model)
    live = session.execute(
        select(func.count())
        .select_from(ModelVersionRow)
        .where(ModelVersionRow.model_id == owner.id, ModelVersionRow.retired_at.is_(None))
    ).scalar_one()
    if live >= bounds_of(session).live_versions:
        raise Conflict(
            f"Model '{model}' has {live} live versions, the most "
            "BULKHEAD_MODEL_MAX_LIVE_VERSIONS allows: retire one first."
        )
    history.check_version_room(session, tenant_id)
    if PEER_ID_OPTION in _base_options(session, owner.id) and not spec.base_url.startswith(
        "https://"
    ):
        raise InvalidRequest(
            "The model is reached over mutual TLS, so its versions need an https upstream.",
            param="upstream",
        )
    row = ModelVersionRow(
        id=repo.new_id("ver"),
        tenant_id=tenant_id,
        model_id=owner.id,
        version=version,
        kind=spec.kind.value,
        base_url=spec.base_url,
        upstream_model=spec.upstream_model or model,
        credential=spec.credential,
        timeout_s=spec.timeout_s,
        created_at=utcnow(),
        retired_at=None,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"version '{version}' of model '{model}' already exists") from None
    repo.bump_version(session)
    return _version_of(row, model)


def retire_version(session: Session, tenant_id: str, model: str, version: str) -> ModelVersion:
    owner = _private_model(session, tenant_id, model)
    row = session.execute(
        select(ModelVersionRow).where(
            ModelVersionRow.model_id == owner.id, ModelVersionRow.version == version
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"version '{version}' of model '{model}' not found")
    if row.retired_at is None:
        row.retired_at = utcnow()
        repo.bump_version(session)
    return _version_of(row, model)


def list_versions(session: Session, tenant_id: str, model: str) -> list[ModelVersion]:
    owner = _private_model(session, tenant_id, model)
    rows = session.execute(
        select(ModelVersionRow)
        .where(ModelVersionRow.model_id == owner.id)
        .order_by(ModelVersionRow.created_at, ModelVersionRow.id)
    ).scalars()
    return [_version_of(r, model) for r in rows]


def live_versions(session: Session) -> list[ModelVersion]:
    """Every version not retired, oldest first (the catalog's view, across tenants)."""
    rows = session.execute(
        select(ModelVersionRow, ModelRow.name)
        .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
        .where(ModelVersionRow.retired_at.is_(None))
        .order_by(ModelVersionRow.created_at, ModelVersionRow.id)
    ).all()
    return [_version_of(row, name) for row, name in rows]


# Quota requests ---------------------------------------------------------------------------


class QuotaStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class QuotaRequest:
    id: str
    tenant_id: str
    quota: str
    value: int
    reason: str
    status: QuotaStatus
    requested_by: str
    decided_by: str | None
    decision_reason: str | None
    created_at: datetime
    decided_at: datetime | None


def _request_of(row: QuotaRequestRow) -> QuotaRequest:
    return QuotaRequest(
        id=row.id,
        tenant_id=row.tenant_id,
        quota=row.quota,
        value=row.value,
        reason=row.reason,
        status=QuotaStatus(row.status),
        requested_by=row.requested_by,
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


def create_quota_request(
    session: Session, tenant_id: str, *, quota: str, value: int, reason: str, requested_by: str
) -> QuotaRequest:
    repo.lock_tenant(session, tenant_id)  # concurrent requests counted one after another
    pending = session.execute(
        select(func.count())
        .select_from(QuotaRequestRow)
        .where(
            QuotaRequestRow.tenant_id == tenant_id,
            QuotaRequestRow.status == QuotaStatus.PENDING.value,
        )
    ).scalar_one()
    if pending >= bounds_of(session).pending_quota_requests:
        raise Conflict(
            f"Your tenant has {pending} quota requests pending, the most "
            "BULKHEAD_TENANT_MAX_PENDING_QUOTA_REQUESTS allows: wait for the platform to "
            "decide them before asking again."
        )
    row = QuotaRequestRow(
        id=repo.new_id("qrq"),
        tenant_id=tenant_id,
        quota=quota,
        value=value,
        reason=reason,
        status=QuotaStatus.PENDING.value,
        requested_by=requested_by,
        decided_by=None,
        decision_reason=None,
        created_at=utcnow(),
        decided_at=None,
    )
    session.add(row)
    session.flush()
    return _request_of(row)


def list_quota_requests(
    session: Session, tenant_id: str | None, status: str | None = None
) -> list[QuotaRequest]:
    """One tenant's requests, or (tenant_id None, platform only) every tenant's."""
    if status is not None and status not in set(QuotaStatus):
        raise InvalidRequest(f"Unknown status '{status}'.", param="status")
    query = select(QuotaRequestRow).order_by(QuotaRequestRow.created_at.desc())
    if tenant_id is not None:
        query = query.where(QuotaRequestRow.tenant_id == tenant_id)
    if status is not None:
        query = query.where(QuotaRequestRow.status == status)
    return [_request_of(r) for r in session.execute(query.limit(1000)).scalars()]


def pending_quota_request(session: Session, request_id: str) -> tuple[QuotaRequest, Tenant]:
    """A pending request and its tenant (platform only), or refuse."""
    row = session.get(QuotaRequestRow, request_id, with_for_update=True)
    if row is None:
        raise NotFound(f"No quota request '{request_id}'.")
    if row.status != QuotaStatus.PENDING:
        raise Conflict(f"The request is {row.status} and can no longer be decided.")
    return _request_of(row), repo.get_tenant_by_id(session, row.tenant_id)


def decide_quota_request(
    session: Session, request_id: str, *, approve: bool, decided_by: str, reason: str | None
) -> QuotaRequest:
    """Approve (the value goes into the tenant's quotas) or deny a pending request."""
    request, _ = pending_quota_request(session, request_id)
    row = session.get(QuotaRequestRow, request_id)
    assert row is not None
    row.status = (QuotaStatus.APPROVED if approve else QuotaStatus.DENIED).value
    row.decided_by, row.decided_at, row.decision_reason = decided_by, utcnow(), reason
    if approve:
        tenant = session.get(TenantRow, request.tenant_id, with_for_update=True)
        assert tenant is not None
        # A new dict, so that the JSON column is seen as changed.
        tenant.quotas = {**dict(tenant.quotas or {}), request.quota: request.value}
        tenant.updated_at = utcnow()
        repo.bump_version(session)
    session.flush()
    return _request_of(row)
