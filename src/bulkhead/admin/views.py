"""Domain objects to API bodies."""

from __future__ import annotations

from bulkhead.admin import schemas as s
from bulkhead.domain import ApiKey, Principal, Tenant
from bulkhead.store.artifacts import OPTION as ARTIFACT_OPTION
from bulkhead.store.repo import ModelListing


def tenant(t: Tenant) -> s.TenantOut:
    return s.TenantOut(id=t.id, name=t.name, tier=t.tier, status=t.status, created_at=t.created_at)


def principal(p: Principal) -> s.PrincipalOut:
    return s.PrincipalOut(id=p.id, name=p.name, kind=p.kind.value, roles=sorted(p.roles))


def key(k: ApiKey, tenant_name: str | None) -> s.KeyOut:
    return s.KeyOut(
        id=k.id,
        tenant=tenant_name,
        principal_id=k.principal_id,
        role=k.role,
        models=sorted(k.models) if k.models is not None else None,
        name=k.name,
        created_at=k.created_at,
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
    )


def model(m: ModelListing, names: dict[str, str]) -> s.ModelOut:
    d = m.deployment
    return s.ModelOut(
        id=m.model.id,
        name=m.model.name,
        shared=m.model.shared,
        owner=names.get(m.model.owner_tenant_id or ""),
        endpoints=sorted(m.model.endpoints),
        kind=d.kind.value,
        upstream=d.base_url or None,
        upstream_model=d.upstream_model,
        worker=d.worker,
        granted_to=sorted(names.get(t, t) for t in m.granted_to),
        credential=d.credential,
        artifact=d.options.get(ARTIFACT_OPTION),
        base=d.options.get("base"),
    )
