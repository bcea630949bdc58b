"""Models, their deployments and the grants that share them with tenants."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bulkhead.domain import (
    Deployment,
    DeploymentKind,
    Endpoint,
    Model,
)
from bulkhead.errors import Conflict, InvalidRequest, NotFound
from bulkhead.store.repo._common import (
    MODEL_NAME,
    _flush,
    bump_version,
    new_id,
)
from bulkhead.store.schema import (
    SHARED_SCOPE,
    DeploymentRow,
    ModelGrantRow,
    ModelRow,
    utcnow,
)

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
