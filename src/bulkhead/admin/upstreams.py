"""Upstream credentials and tenants' upstream allowlists (platform), and a tenant's view of both.

    POST   /admin/v1/upstream-credentials                      register (env var or sealed secret)
    GET    /admin/v1/upstream-credentials[/{credential}]       list / show (never a secret)
    DELETE /admin/v1/upstream-credentials/{credential}         remove one nothing uses
    POST   /admin/v1/upstream-credentials/{credential}/grants  allow it to a tenant
    DELETE /admin/v1/upstream-credentials/{credential}/grants/{tenant}
    GET|PUT /admin/v1/tenants/{name}/upstream-allowlist        a tenant's allowlist
    GET    /tenant/v1/upstreams                                what the caller's tenant may use

Every change is audited by the router like any other route; the event names
the credential or tenant, and nothing of a secret (bodies are never recorded).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session

from bulkhead.admin import schemas as s
from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.admin.rules import tenant_id
from bulkhead.errors import Unavailable
from bulkhead.store import repo, upstreams

# What a tenant's versions may reach and send: the platform's floor for the tenant.
SAFEGUARDS = frozenset({Effect.CHANGE_SAFEGUARDS})


def _out(credential: upstreams.Credential, names: dict[str, str]) -> s.UpstreamCredentialOut:
    return s.UpstreamCredentialOut(
        name=credential.name,
        source="env" if credential.source == "env" else "sealed",
        env=credential.env,
        tenants=sorted(names.get(t, t) for t in credential.tenants),
        created_at=credential.created_at,
    )


def _names(db: Session) -> dict[str, str]:
    return {t.id: t.name for t in repo.list_tenants(db)}


async def create(call: Call) -> s.UpstreamCredentialOut:
    body: s.UpstreamCredentialCreate = call.body
    credential_id, sealed = repo.new_id("upc"), None
    if body.secret is not None:
        if call.services.credentials is None:  # Fail closed: nothing here could open it again.
            raise Unavailable("Sealed credentials need the KMS, which is not configured.")
        secret = body.secret.get_secret_value()
        sealed = await asyncio.to_thread(call.services.credentials.seal, credential_id, secret)

    def work(db: Session) -> s.UpstreamCredentialOut:
        made = upstreams.create_credential(
            db, body.name, credential_id=credential_id, env=body.env, sealed=sealed
        )
        return _out(made, _names(db))

    return await call.services.control.write(work)


async def list_all(call: Call) -> list[s.UpstreamCredentialOut]:
    def work(db: Session) -> list[s.UpstreamCredentialOut]:
        names = _names(db)
        return [_out(c, names) for c in upstreams.list_credentials(db)]

    return await call.services.control.read(work)


async def get(call: Call) -> s.UpstreamCredentialOut:
    name = call.params["credential"]
    return await call.services.control.read(
        lambda db: _out(upstreams.get_credential(db, name), _names(db))
    )


async def delete(call: Call) -> None:
    await call.services.control.write(
        lambda db: upstreams.delete_credential(db, call.params["credential"])
    )


async def allow(call: Call) -> None:
    body: s.GrantCreate = call.body

    def work(db: Session) -> None:
        tenant = repo.get_tenant(db, body.tenant)
        upstreams.allow_credential(db, call.params["credential"], tenant.id)

    await call.services.control.write(work)


async def disallow(call: Call) -> None:
    def work(db: Session) -> None:
        tenant = repo.get_tenant(db, call.params["tenant"])
        upstreams.disallow_credential(db, call.params["credential"], tenant.id)

    await call.services.control.write(work)


async def get_allowlist(call: Call) -> s.AllowlistOut:
    def work(db: Session) -> s.AllowlistOut:
        tenant = repo.get_tenant(db, call.params["name"])
        return s.AllowlistOut(tenant=tenant.name, entries=list(upstreams.allowlist(db, tenant.id)))

    return await call.services.control.read(work)


async def set_allowlist(call: Call) -> s.AllowlistOut:
    body: s.AllowlistSet = call.body

    def work(db: Session) -> s.AllowlistOut:
        tenant = repo.get_tenant(db, call.params["name"])
        entries = upstreams.set_allowlist(db, tenant.id, body.entries)
        return s.AllowlistOut(tenant=tenant.name, entries=list(entries))

    return await call.services.control.write(work)


async def tenant_view(call: Call) -> s.TenantUpstreamsOut:
    tid = tenant_id(call.ctx)

    def work(db: Session) -> s.TenantUpstreamsOut:
        return s.TenantUpstreamsOut(
            allowlist=list(upstreams.allowlist(db, tid)),
            credentials=upstreams.allowed_credentials(db, tid),
        )

    return await call.services.control.tenant_read(tid, work)


ROUTES = (
    Route.post(
        "/admin/v1/upstream-credentials",
        action="admin:upstream_credentials.create",
        handler=create,
        summary="Register an upstream credential: an env var's name, or a secret sealed by the KMS",
        body=s.UpstreamCredentialCreate,
        response=s.UpstreamCredentialOut,
        status=201,
    ),
    Route.get(
        "/admin/v1/upstream-credentials",
        action="admin:upstream_credentials.list",
        handler=list_all,
        summary="List upstream credentials and the tenants allowed each (never a secret)",
        response=s.UpstreamCredentialOut,
        many=True,
    ),
    Route.get(
        "/admin/v1/upstream-credentials/{credential}",
        action="admin:upstream_credentials.get",
        handler=get,
        summary="Show an upstream credential (never its secret)",
        response=s.UpstreamCredentialOut,
    ),
    Route.delete(
        "/admin/v1/upstream-credentials/{credential}",
        action="admin:upstream_credentials.delete",
        handler=delete,
        summary="Remove an upstream credential that no deployment or live version uses",
        response=None,
        status=204,
    ),
    Route.post(
        "/admin/v1/upstream-credentials/{credential}/grants",
        action="admin:upstream_credentials.allow",
        handler=allow,
        summary="Allow a tenant's model versions to use an upstream credential",
        body=s.GrantCreate,
        response=None,
        status=204,
        effects=SAFEGUARDS,
    ),
    Route.delete(
        "/admin/v1/upstream-credentials/{credential}/grants/{tenant}",
        action="admin:upstream_credentials.disallow",
        handler=disallow,
        summary="Withdraw an upstream credential from a tenant (its versions stop sending it)",
        response=None,
        status=204,
        effects=SAFEGUARDS,
    ),
    Route.get(
        "/admin/v1/tenants/{name}/upstream-allowlist",
        action="admin:tenants.upstreams.get",
        handler=get_allowlist,
        summary="Show a tenant's upstream allowlist",
        response=s.AllowlistOut,
    ),
    Route.put(
        "/admin/v1/tenants/{name}/upstream-allowlist",
        action="admin:tenants.upstreams.set",
        handler=set_allowlist,
        summary="Replace a tenant's upstream allowlist (host names, '*.' domains, CIDRs)",
        body=s.AllowlistSet,
        response=s.AllowlistOut,
        effects=SAFEGUARDS,
    ),
    Route.get(
        "/tenant/v1/upstreams",
        action="tenant:upstreams.get",
        handler=tenant_view,
        summary="Your tenant's upstream allowlist and the credentials its versions may use",
        response=s.TenantUpstreamsOut,
    ),
)
