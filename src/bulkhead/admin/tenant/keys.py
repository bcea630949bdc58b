"""/tenant/v1/keys: the tenant's API keys, made, rotated and revoked by its own admins.

A key it creates or rotates reaches no further than the key that does it
(`bulkhead.admin.rules`).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bulkhead.admin import rules, views
from bulkhead.admin import schemas as s
from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.domain import ApiKey
from bulkhead.errors import ModelNotFound
from bulkhead.store import repo, selfservice


async def list_keys(call: Call) -> list[s.KeyOut]:
    tid, name = rules.tenant_id(call.ctx), rules.tenant_name(call.ctx)
    keys = await call.services.control.tenant_read(tid, lambda db: repo.list_keys(db, tid))
    return [views.key(k, name) for k in keys]


async def create_key(call: Call) -> s.KeyCreated:
    body: s.KeyCreate = call.body
    rules.grantable(call.ctx, [body.role])
    control = call.services.control
    tid, by = rules.tenant_id(call.ctx), rules.issuer(control, call.ctx)
    visible = control.catalog.snapshot.models_for(tid)
    for model in body.models or ():
        if model not in visible:
            raise ModelNotFound(model)
    models = rules.scoped_models(by, body.models)
    expires_at = rules.bounded_expiry(by, rules.expiry(body.expires_in_s))

    def work(db: Session) -> s.KeyCreated:
        principal = repo.get_principal(db, tid, body.principal) if body.principal else None
        rules.holds(principal, body.role)
        created = repo.create_key(
            db,
            tid,
            role=body.role,
            principal=principal,
            models=models,
            expires_at=expires_at,
            name=body.name,
            # The issuer's limits hold the new key too, as a floor.
            limits_floor=by.limits if by is not None else None,
        )
        key = views.key(created.key, rules.tenant_name(call.ctx))
        return s.KeyCreated(key=key, secret=created.secret)

    return await control.tenant_write(tid, work)


async def revoke_key(call: Call) -> s.KeyOut:
    tid, key_id = rules.tenant_id(call.ctx), call.params["key_id"]
    key = await call.services.control.tenant_write(tid, lambda db: repo.revoke_key(db, tid, key_id))
    return views.key(key, rules.tenant_name(call.ctx))


async def rotate_key(call: Call) -> s.KeyCreated:
    body: s.KeyRotate = call.body
    control = call.services.control
    tid, by = rules.tenant_id(call.ctx), rules.issuer(control, call.ctx)

    def check(key: ApiKey) -> None:
        rules.grantable(call.ctx, [key.role])
        rules.no_broader(by, key)

    def work(db: Session) -> s.KeyCreated:
        created = selfservice.rotate_key(
            db, tid, call.params["key_id"], grace_s=body.grace_s, check_key=check
        )
        key = views.key(created.key, rules.tenant_name(call.ctx))
        return s.KeyCreated(key=key, secret=created.secret)

    return await control.tenant_write(tid, work)


ROUTES = (
    Route.get(
        "/tenant/v1/keys",
        action="tenant:keys.list",
        handler=list_keys,
        summary="List your tenant's keys",
        response=s.KeyOut,
        many=True,
    ),
    Route.post(
        "/tenant/v1/keys",
        action="tenant:keys.create",
        handler=create_key,
        summary="Create an API key in your tenant (no broader than the key you use)",
        body=s.KeyCreate,
        response=s.KeyCreated,
        status=201,
        effects=frozenset({Effect.ACT_IN_TENANT}),
    ),
    Route.post(
        "/tenant/v1/keys/{key_id}/revoke",
        action="tenant:keys.revoke",
        handler=revoke_key,
        summary="Revoke one of your tenant's keys",
        response=s.KeyOut,
    ),
    Route.post(
        "/tenant/v1/keys/{key_id}/rotate",
        action="tenant:keys.rotate",
        handler=rotate_key,
        summary="Rotate a key: a new secret (shown once) for the same principal, role, models "
        "and limits (not of a key broader than the one you use)",
        body=s.KeyRotate,
        response=s.KeyCreated,
        status=201,
        effects=frozenset({Effect.ACT_IN_TENANT}),
    ),
)
