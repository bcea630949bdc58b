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
from bulkhead.admin.control import Control
from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.admin.tenant import tenant_id
from bulkhead.errors import Unavailable
from bulkhead.store import repo, upstreams
from bulkhead.store.upstreams import CredentialVault

P = "/admin/v1/upstream-credentials"
# What a tenant's versions may reach and send: the platform's floor for the tenant.
SAFEGUARDS = frozenset({Effect.CHANGE_SAFEGUARDS})
ALLOWLIST = "/admin/v1/tenants/{name}/upstream-allowlist"


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


def routes(control: Control, vault: CredentialVault | None) -> list[Route]:
    async def create(call: Call) -> s.UpstreamCredentialOut:
        body: s.UpstreamCredentialCreate = call.body
        credential_id, sealed = repo.new_id("upc"), None
        if body.secret is not None:
            if vault is None:  # Fail closed: nothing here could open it again.
                raise Unavailable("Sealed credentials need the KMS, which is not configured.")
            secret = body.secret.get_secret_value()
            sealed = await asyncio.to_thread(vault.seal, credential_id, secret)

        def work(db: Session) -> s.UpstreamCredentialOut:
            made = upstreams.create_credential(
                db, body.name, credential_id=credential_id, env=body.env, sealed=sealed
            )
            return _out(made, _names(db))

        return await control.write(work)

    async def list_all(call: Call) -> list[s.UpstreamCredentialOut]:
        def work(db: Session) -> list[s.UpstreamCredentialOut]:
            names = _names(db)
            return [_out(c, names) for c in upstreams.list_credentials(db)]

        return await control.read(work)

    async def get(call: Call) -> s.UpstreamCredentialOut:
        name = call.params["credential"]
        return await control.read(lambda db: _out(upstreams.get_credential(db, name), _names(db)))

    async def delete(call: Call) -> None:
        await control.write(lambda db: upstreams.delete_credential(db, call.params["credential"]))

    async def allow(call: Call) -> None:
        body: s.GrantCreate = call.body

        def work(db: Session) -> None:
            tenant = repo.get_tenant(db, body.tenant)
            upstreams.allow_credential(db, call.params["credential"], tenant.id)

        await control.write(work)

    async def disallow(call: Call) -> None:
        def work(db: Session) -> None:
            tenant = repo.get_tenant(db, call.params["tenant"])
            upstreams.disallow_credential(db, call.params["credential"], tenant.id)

        await control.write(work)

    async def get_allowlist(call: Call) -> s.AllowlistOut:
        def work(db: Session) -> s.AllowlistOut:
            tenant = repo.get_tenant(db, call.params["name"])
            return s.AllowlistOut(
                tenant=tenant.name, entries=list(upstreams.allowlist(db, tenant.id))
            )

        return await control.read(work)

    async def set_allowlist(call: Call) -> s.AllowlistOut:
        body: s.AllowlistSet = call.body

        def work(db: Session) -> s.AllowlistOut:
            tenant = repo.get_tenant(db, call.params["name"])
            entries = upstreams.set_allowlist(db, tenant.id, body.entries)
            return s.AllowlistOut(tenant=tenant.name, entries=list(entries))

        return await control.write(work)

    async def tenant_view(call: Call) -> s.TenantUpstreamsOut:
        tid = tenant_id(call.ctx)

        def work(db: Session) -> s.TenantUpstreamsOut:
            return s.TenantUpstreamsOut(
                allowlist=list(upstreams.allowlist(db, tid)),
                credentials=upstreams.allowed_credentials(db, tid),
            )

        return await control.tenant_read(tid, work)

    one = f"{P}/{{credential}}"
    return [
        Route(
            "POST",
            P,
            "admin:upstream_credentials.create",
            create,
            "Register an upstream credential: an env var's name, or a secret sealed by the KMS",
            s.UpstreamCredentialCreate,
            s.UpstreamCredentialOut,
            status=201,
        ),
        Route(
            "GET",
            P,
            "admin:upstream_credentials.list",
            list_all,
            "List upstream credentials and the tenants allowed each (never a secret)",
            response=s.UpstreamCredentialOut,
            many=True,
        ),
        Route(
            "GET",
            one,
            "admin:upstream_credentials.get",
            get,
            "Show an upstream credential (never its secret)",
            response=s.UpstreamCredentialOut,
        ),
        Route(
            "DELETE",
            one,
            "admin:upstream_credentials.delete",
            delete,
            "Remove an upstream credential that no deployment or live version uses",
            status=204,
        ),
        Route(
            "POST",
            f"{one}/grants",
            "admin:upstream_credentials.allow",
            allow,
            "Allow a tenant's model versions to use an upstream credential",
            s.GrantCreate,
            status=204,
            effects=SAFEGUARDS,
        ),
        Route(
            "DELETE",
            f"{one}/grants/{{tenant}}",
            "admin:upstream_credentials.disallow",
            disallow,
            "Withdraw an upstream credential from a tenant (its versions stop sending it)",
            status=204,
            effects=SAFEGUARDS,
        ),
        Route(
            "GET",
            ALLOWLIST,
            "admin:tenants.upstreams.get",
            get_allowlist,
            "Show a tenant's upstream allowlist",
            response=s.AllowlistOut,
        ),
        Route(
            "PUT",
            ALLOWLIST,
            "admin:tenants.upstreams.set",
            set_allowlist,
            "Replace a tenant's upstream allowlist (host names, '*.' domains, CIDRs)",
            s.AllowlistSet,
            s.AllowlistOut,
            effects=SAFEGUARDS,
        ),
        Route(
            "GET",
            "/tenant/v1/upstreams",
            "tenant:upstreams.get",
            tenant_view,
            "Your tenant's upstream allowlist and the credentials its versions may use",
            response=s.TenantUpstreamsOut,
        ),
    ]
