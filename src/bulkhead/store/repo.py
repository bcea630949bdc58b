"""Repository functions: the only code that reads and writes the control-plane tables.

Every function that touches tenant-owned rows takes the tenant id as a
required argument and puts it in the query; a row of another tenant is
indistinguishable from a missing one (`NotFound`).  Each change bumps the
catalog version so every gateway replica reloads its in-memory catalog.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bulkhead.domain import (
    ApiKey,
    Deployment,
    DeploymentKind,
    Endpoint,
    Model,
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantConfig,
    TenantStatus,
    Tier,
)
from bulkhead.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bulkhead.identity import issue_key
from bulkhead.limits.policy import looser, tightest
from bulkhead.store.schema import (
    SHARED_SCOPE,
    ApiKeyRow,
    CatalogVersionRow,
    DeploymentRow,
    ModelGrantRow,
    ModelRow,
    PrincipalRow,
    TenantRow,
    utcnow,
)

TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
PRINCIPAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def bump_version(session: Session) -> None:
    session.execute(update(CatalogVersionRow).values(version=CatalogVersionRow.version + 1))


def catalog_version(session: Session) -> int:
    return int(session.execute(select(CatalogVersionRow.version)).scalar_one())


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None


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


# API keys --------------------------------------------------------------------------------


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
    return [key_of(r) for r in session.execute(select(ApiKeyRow)).scalars()]


# Models ----------------------------------------------------------------------------------


def model_of(row: ModelRow) -> Model:
    return Model(
        id=row.id,
        name=row.name,
        owner_tenant_id=row.owner_tenant_id,
        endpoints=frozenset(Endpoint(e) for e in row.endpoints),
        description=row.description,
        attributes=dict(row.attributes or {}),
    )


def deployment_of(row: DeploymentRow) -> Deployment:
    return Deployment(
        id=row.id,
        model_id=row.model_id,
        kind=DeploymentKind(row.kind),
        base_url=row.base_url,
        upstream_model=row.upstream_model,
        credential=row.credential,
        worker=row.worker,
        timeout_s=row.timeout_s,
        options={str(k): str(v) for k, v in row.options.items()},
    )


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    kind: DeploymentKind
    base_url: str = ""
    upstream_model: str = ""
    credential: str | None = None  # a registered upstream credential's name
    worker: str | None = None
    timeout_s: float = 60.0
    options: Mapping[str, str] = field(default_factory=dict)


def add_model(
    session: Session,
    name: str,
    owner_tenant_id: str | None,
    endpoints: Iterable[Endpoint],
    spec: DeploymentSpec,
    description: str = "",
) -> tuple[Model, Deployment]:
    if not MODEL_NAME.fullmatch(name):
        raise InvalidRequest("model name has invalid characters", param="name")
    scope = owner_tenant_id or SHARED_SCOPE
    if session.execute(
        select(ModelRow.id).where(ModelRow.scope == scope, ModelRow.name == name)
    ).first():
        raise Conflict(f"model '{name}' already exists")
    model = ModelRow(
        id=new_id("mdl"),
        scope=scope,
        owner_tenant_id=owner_tenant_id,
        name=name,
        endpoints=sorted(e.value for e in endpoints),
        description=description,
        created_at=utcnow(),
    )
    deployment = DeploymentRow(
        id=new_id("dep"),
        model_id=model.id,
        kind=spec.kind.value,
        base_url=spec.base_url,
        upstream_model=spec.upstream_model or name,
        credential=spec.credential,
        worker=spec.worker,
        timeout_s=spec.timeout_s,
        options=dict(spec.options),
    )
    session.add(model)
    _flush(session, f"model '{name}'")
    session.add(deployment)
    _flush(session, f"deployment of '{name}'")
    bump_version(session)
    return model_of(model), deployment_of(deployment)


def _shared_model_row(session: Session, name: str) -> ModelRow:
    row = session.execute(
        select(ModelRow).where(ModelRow.scope == SHARED_SCOPE, ModelRow.name == name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"shared model '{name}' not found")
    return row


def grant_model(session: Session, name: str, tenant_id: str) -> None:
    model = _shared_model_row(session, name)
    if session.get(ModelGrantRow, (model.id, tenant_id)) is None:
        session.add(ModelGrantRow(model_id=model.id, tenant_id=tenant_id, created_at=utcnow()))
        _flush(session, "grant")
        bump_version(session)


def revoke_grant(session: Session, name: str, tenant_id: str) -> None:
    model = _shared_model_row(session, name)
    grant = session.get(ModelGrantRow, (model.id, tenant_id))
    if grant is not None:
        session.delete(grant)
        bump_version(session)


@dataclass(frozen=True, slots=True)
class ModelListing:
    model: Model
    deployment: Deployment
    granted_to: tuple[str, ...]


def list_models(session: Session) -> list[ModelListing]:
    """Every model with its deployment and grants (platform view)."""
    deployments = {
        r.model_id: deployment_of(r) for r in session.execute(select(DeploymentRow)).scalars()
    }
    grants: dict[str, list[str]] = {}
    for grant in session.execute(select(ModelGrantRow)).scalars():
        grants.setdefault(grant.model_id, []).append(grant.tenant_id)
    rows = session.execute(select(ModelRow).order_by(ModelRow.name)).scalars()
    return [
        ModelListing(model_of(r), deployments[r.id], tuple(sorted(grants.get(r.id, ()))))
        for r in rows
        if r.id in deployments
    ]
