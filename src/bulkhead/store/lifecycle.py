"""Tenant settings and deletion (the rows; keys and blobs are `TenantKeyring`'s)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from bulkhead.domain import Tenant, TenantConfig
from bulkhead.errors import InvalidRequest
from bulkhead.store.repo import _tenant_row, bump_version, tenant_of
from bulkhead.store.schema import utcnow


def set_config(session: Session, name: str, changes: Mapping[str, Any]) -> Tenant:
    """Merge `changes` into the tenant's settings; the result is validated as a whole."""
    row = _tenant_row(session, name)
    merged = {**(row.config or {}), **changes}
    try:
        config = TenantConfig.from_json(merged)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid tenant setting: {exc}.", param="config") from None
    row.config = config.to_json()
    row.updated_at = utcnow()
    bump_version(session)
    return tenant_of(row)


def delete_tenant(session: Session, name: str) -> Tenant:
    """Delete the tenant and, by cascade, its principals, keys, private models and files."""
    row = _tenant_row(session, name)
    tenant = tenant_of(row)
    session.delete(row)
    bump_version(session)
    return tenant
