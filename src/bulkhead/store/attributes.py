"""Policy attributes of tenants, models and principals: replaced whole, one row at a time.

The values are checked before they get here (`bulkhead.admin.platform.attributes`);
this module stores them and bumps the catalog version, so that every
replica's authorizer decides by the new ones (its decision cache is keyed by
that version).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bulkhead.domain import Model, Principal, Tenant
from bulkhead.errors import NotFound
from bulkhead.store import repo
from bulkhead.store.schema import SHARED_SCOPE, ModelRow, PrincipalRow, TenantRow, utcnow


def _tenant_row(session: Session, name: str) -> TenantRow:
    row = session.execute(select(TenantRow).where(TenantRow.name == name)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"tenant '{name}' not found")
    return row


def _model_row(session: Session, name: str, owner_tenant_id: str | None) -> ModelRow:
    scope = owner_tenant_id or SHARED_SCOPE
    row = session.execute(
        select(ModelRow).where(ModelRow.scope == scope, ModelRow.name == name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"model '{name}' not found")
    return row


def _principal_row(session: Session, tenant_id: str, name: str) -> PrincipalRow:
    row = session.execute(
        select(PrincipalRow).where(PrincipalRow.scope == tenant_id, PrincipalRow.name == name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"principal '{name}' not found")
    return row


def set_tenant_attributes(session: Session, name: str, attributes: Mapping[str, Any]) -> Tenant:
    row = _tenant_row(session, name)
    row.attributes = dict(attributes)
    row.updated_at = utcnow()
    repo.bump_version(session)
    return repo.tenant_of(row)


def get_model(session: Session, name: str, owner_tenant_id: str | None) -> Model:
    return repo.model_of(_model_row(session, name, owner_tenant_id))


def set_model_attributes(
    session: Session, name: str, owner_tenant_id: str | None, attributes: Mapping[str, Any]
) -> Model:
    row = _model_row(session, name, owner_tenant_id)
    row.attributes = dict(attributes)
    repo.bump_version(session)
    return repo.model_of(row)


def set_principal_attributes(
    session: Session, tenant_id: str, name: str, attributes: Mapping[str, Any]
) -> Principal:
    row = _principal_row(session, tenant_id, name)
    row.attributes = dict(attributes)
    repo.bump_version(session)
    return repo.principal_of(row)
