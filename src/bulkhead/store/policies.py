"""Tenants' own Cedar policies: one text per tenant, replaced as a whole.

A write bumps the catalog version, so every replica reloads them (and drops
its cached decisions) on its next poll; the data plane reads them from the
catalog snapshot, never from here.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bulkhead.store import repo
from bulkhead.store.schema import TenantPolicyRow, utcnow


def tenant_policy(session: Session, tenant_id: str) -> tuple[str, int]:
    """The tenant's policy text and its version (0 and "" when it has none)."""
    row = session.get(TenantPolicyRow, tenant_id)
    return (row.policy, row.version) if row is not None else ("", 0)


def replace_tenant_policy(session: Session, tenant_id: str, text: str) -> int:
    """Store `text` (already checked) as the tenant's policies; returns the new version."""
    row = session.get(TenantPolicyRow, tenant_id)
    if row is None:
        row = TenantPolicyRow(tenant_id=tenant_id, policy=text, version=1, created_at=utcnow())
        session.add(row)
    else:
        row.policy, row.version, row.created_at = text, row.version + 1, utcnow()
    repo.bump_version(session)
    return row.version


def all_tenant_policies(session: Session) -> dict[str, str]:
    rows = session.execute(select(TenantPolicyRow)).scalars()
    return {r.tenant_id: r.policy for r in rows if r.policy.strip()}
