"""/admin/v1: a tenant's OIDC identity provider, and principals' passwords."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from bulkhead.admin import answers, bootstrap
from bulkhead.admin.deps import need
from bulkhead.admin.effects import Effect, Exempt
from bulkhead.admin.router import Call, Route
from bulkhead.domain import IdpConfig, Role
from bulkhead.errors import Conflict, InvalidRequest, PermissionDenied
from bulkhead.identity.idp_fetch import check_idp_literal
from bulkhead.identity.jwks import check_jwks_url
from bulkhead.identity.oidc_login import MAX_CLIENT_SECRET, ClientSecretVault
from bulkhead.identity.passwords import Passwords
from bulkhead.runtime.egress import EgressPolicy
from bulkhead.store import repo, signin
from bulkhead.store.signin import KEEP_SECRET

_REPLACE_RULE = (
    "Write-only; the answer says client_secret_set. A string sets it (sealed under the "
    "tenant's KEK); null clears it (a public client); absent keeps the stored one, but "
    "only while issuer and audience (the client id) stay the same: changing either "
    "without naming client_secret is refused (400, param client_secret), so a secret "
    "never reaches another IdP or client."
)


class IdpPut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    issuer: str = Field(min_length=1, max_length=512)
    audience: str = Field(min_length=1, max_length=512)
    jwks_url: str = Field(min_length=1, max_length=2048)
    claims: dict[str, Any] = Field(default_factory=dict)
    require_mfa_for_admin: bool = True
    # For an IdP that wants a confidential client at its token endpoint (the console's
    # sign-in): sealed under the tenant's KEK, never shown again, never logged.  Absent
    # keeps the stored one (same issuer and client id only), null clears it.
    client_secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CLIENT_SECRET,
        repr=False,
        description=_REPLACE_RULE,
    )


class IdpOut(BaseModel):
    tenant: str
    issuer: str
    audience: str
    jwks_url: str
    claims: dict[str, Any]
    require_mfa_for_admin: bool
    client_secret_set: bool = False


class PasswordSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=1024, repr=False)


def _out(tenant: str, idp: IdpConfig) -> IdpOut:
    return IdpOut(
        tenant=tenant,
        issuer=idp.issuer,
        audience=idp.audience,
        jwks_url=idp.jwks_url,
        claims=idp.mapping.to_json(),
        require_mfa_for_admin=idp.require_mfa_for_admin,
        client_secret_set=idp.has_client_secret,
    )


def _config(tenant_id: str, body: IdpPut, egress: EgressPolicy) -> IdpConfig:
    try:
        check_jwks_url(body.jwks_url)
        check_idp_literal(body.jwks_url, egress)
        mapping = signin.claims_json(body.claims)
    except ValueError as exc:
        raise InvalidRequest(
            str(exc), param="jwks_url" if "jwks" in str(exc) else "claims"
        ) from None
    return IdpConfig(
        tenant_id=tenant_id,
        issuer=body.issuer,
        audience=body.audience,
        jwks_url=body.jwks_url,
        mapping=mapping,
        require_mfa_for_admin=body.require_mfa_for_admin,
    )


def passwords_of(call: Call) -> Passwords:
    return need(call.services.passwords, "password hashing")


async def idp_target(call: Call) -> str | Exempt:
    return await bootstrap.grant_target(call.services.control, call, lambda db: True)


async def password_target(call: Call) -> str | Exempt:
    def first_admin(db: Session) -> bool:
        tenant = repo.get_tenant(db, call.params["name"])
        principal = repo.get_principal(db, tenant.id, call.params["principal"])
        return Role.TENANT_ADMIN in principal.roles

    return await bootstrap.grant_target(call.services.control, call, first_admin)


async def put_idp(call: Call) -> IdpOut:
    body: IdpPut = call.body
    name = call.params["name"]
    named = "client_secret" in body.model_fields_set
    sealed: bytes | signin.Stored | None = None if named else KEEP_SECRET
    tenant_id = None
    if body.client_secret is not None:
        keyring = call.services.keyring
        tenant_id = await call.services.control.read(lambda db: repo.get_tenant(db, name).id)
        vault = ClientSecretVault(keyring.kms, keyring.ensure)
        sealed = await asyncio.to_thread(vault.seal, body.client_secret, tenant_id)

    def work(db: Session) -> IdpOut:
        tenant = repo.get_tenant(db, name)
        bootstrap.claim(db, call, tenant.id, "admin:tenants.idp.set")
        # Sealed for the tenant this one replaced meanwhile?
        if body.client_secret is not None and tenant.id != tenant_id:
            raise Conflict("The tenant was replaced meanwhile: send the request again.")
        config = _config(tenant.id, body, call.services.idp_egress)
        return _out(name, signin.put_idp(db, config, sealed))

    return await call.services.control.write(work)


async def get_idp(call: Call) -> IdpOut:
    name = call.params["name"]
    return await call.services.control.read(
        lambda db: _out(name, signin.get_idp(db, repo.get_tenant(db, name).id))
    )


async def delete_idp(call: Call) -> None:
    name = call.params["name"]
    await call.services.control.write(
        lambda db: signin.delete_idp(db, repo.get_tenant(db, name).id)
    )


async def set_password(call: Call) -> dict[str, Any]:
    body: PasswordSet = call.body
    # Argon2id on the password pool, not on the executor other admin calls share.
    if call.services.password_pool is not None:
        hashed = await call.services.password_pool.run(passwords_of(call).hash, body.password)
    else:
        hashed = await asyncio.to_thread(passwords_of(call).hash, body.password)
    tenant_name = call.params.get("name")
    if tenant_name is None and call.params["principal"] != call.ctx.principal.name:
        # Another platform principal's password would let this one sign in as it,
        # enrol its second factor and approve its own access requests.
        raise PermissionDenied(
            "A platform principal sets only its own password.", policy="platform.own-password"
        )

    def work(db: Session) -> dict[str, Any]:
        tenant_id = repo.get_tenant(db, tenant_name).id if tenant_name else None
        principal = repo.get_principal(db, tenant_id, call.params["principal"])
        if tenant_id is not None and Role.TENANT_ADMIN in principal.roles:
            bootstrap.claim(db, call, tenant_id, "admin:principals.password.set")
        signin.set_password(db, principal, hashed)
        return {"principal": principal.name, "password_set": True}

    return await call.services.control.write(work)


# A tenant's IdP and its principals' passwords let whoever sets them act
# inside the tenant: a grant, but for the tenant's first admin.
_INSIDE = frozenset({Effect.ACT_IN_TENANT})


ROUTES = (
    Route.put(
        "/admin/v1/tenants/{name}/idp",
        action="admin:tenants.idp.set",
        handler=put_idp,
        summary="Register or replace the tenant's OIDC identity provider (a grant, but "
        "for its first admin)",
        body=IdpPut,
        response=IdpOut,
        effects=_INSIDE,
        grant_target=idp_target,
    ),
    Route.get(
        "/admin/v1/tenants/{name}/idp",
        action="admin:tenants.idp.get",
        handler=get_idp,
        summary="The tenant's OIDC identity provider",
        response=IdpOut,
    ),
    Route.delete(
        "/admin/v1/tenants/{name}/idp",
        action="admin:tenants.idp.delete",
        handler=delete_idp,
        summary="Remove the tenant's OIDC identity provider",
        response=None,
        status=204,
    ),
    Route.put(
        "/admin/v1/tenants/{name}/principals/{principal}/password",
        action="admin:principals.password.set",
        handler=set_password,
        summary="Set a tenant principal's password (ends its sessions; a grant, but for the "
        "tenant's first admin)",
        body=PasswordSet,
        response=answers.PasswordSetOut,
        effects=_INSIDE,
        grant_target=password_target,
    ),
    Route.put(
        "/admin/v1/principals/{principal}/password",
        action="admin:principals.password.set",
        handler=set_password,
        summary="Set your own password as a platform principal (ends your sessions)",
        body=PasswordSet,
        response=answers.PasswordSetOut,
    ),
)
