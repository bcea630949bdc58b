"""Rate limits and budgets: a tenant's (platform admins) and each key's (both surfaces).

A tenant's limits are its tier's defaults with its own overrides on top; a
key's limits narrow the tenant's.  A platform admin raising a tenant's
limits above its tier's defaults needs the grant quota approval needs
(`admin/quotas.py`).  The key limits a platform admin sets are the key's
floor: its tenant's admins only tighten them (`repo.set_key_limits`).  A
change bumps the catalog version, so every replica enforces it from its next
poll, and the request that made it leaves an audit event like every
management call.  The tenant's routes read and write in tenant transactions.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bulkhead.admin import answers, rules
from bulkhead.admin import schemas as s
from bulkhead.admin.effects import Effect, Exempt
from bulkhead.admin.quotas import APPROVE, raise_target
from bulkhead.admin.router import Call, Route
from bulkhead.admin.rules import tenant_id
from bulkhead.domain import ApiKey, Tenant
from bulkhead.errors import InvalidRequest, NotFound
from bulkhead.limits.policy import KEY_QUOTAS, QUOTAS, TIER_DEFAULTS, check_quotas, effective
from bulkhead.store import repo


def tenant_limits(tenant: Tenant) -> dict[str, Any]:
    values = effective(tenant.tier, tenant.quotas)
    return {
        "tenant": tenant.name,
        "tier": tenant.tier.value,
        "limits": {
            name: {
                "value": values[name],
                "source": "tenant" if name in tenant.quotas else "tier",
                "tier_default": TIER_DEFAULTS[tenant.tier][name],
            }
            for name in QUOTAS
        },
        "limits_fail_open": tenant.config.limits_fail_open,
    }


def key_limits(key: ApiKey) -> dict[str, Any]:
    """The limits calls with the key are held to, and those of them the platform set."""
    return {
        "key_id": key.id,
        "limits": {n: (key.limits or {}).get(n) for n in sorted(KEY_QUOTAS)},
        "platform": {n: (key.limits_floor or {}).get(n) for n in sorted(KEY_QUOTAS)},
    }


def _changes(body: BaseModel, *, key: bool) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidRequest("Name at least one limit to change.")
    checked = {k: v for k, v in changes.items() if v == "default"}
    try:
        checked |= check_quotas({k: v for k, v in changes.items() if v != "default"}, key=key)
    except ValueError as exc:
        raise InvalidRequest(f"{exc}.", param=str(exc).split()[0]) from None
    return checked


def _key(keys: list[ApiKey], key_id: str) -> ApiKey:
    found = next((k for k in keys if k.id == key_id), None)
    if found is None:
        raise NotFound(f"key '{key_id}' not found")
    return found


async def platform_get_limits(call: Call) -> dict[str, Any]:
    return tenant_limits(
        await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    )


async def platform_limits_target(call: Call) -> str | Exempt:
    return await raise_target(
        call.services.control, call.params["name"], _changes(call.body, key=False)
    )


async def platform_set_limits(call: Call) -> dict[str, Any]:
    changes = _changes(call.body, key=False)
    return tenant_limits(
        await call.services.control.write(
            lambda db: repo.set_tenant_limits(db, call.params["name"], changes)
        )
    )


async def platform_set_key(call: Call) -> dict[str, Any]:
    changes = _changes(call.body, key=True)

    def work(db: Any) -> ApiKey:
        tenant = repo.get_tenant(db, call.params["name"])
        return repo.set_key_limits(db, tenant.id, call.params["key_id"], changes, floor=True)

    return key_limits(await call.services.control.write(work))


async def tenant_get_limits(call: Call) -> dict[str, Any]:
    tid = tenant_id(call.ctx)
    tenant = await call.services.control.tenant_read(tid, lambda db: repo.get_tenant_by_id(db, tid))
    return tenant_limits(tenant)


async def tenant_get_key(call: Call) -> dict[str, Any]:
    tid = tenant_id(call.ctx)
    keys = await call.services.control.tenant_read(tid, lambda db: repo.list_keys(db, tid))
    return key_limits(_key(keys, call.params["key_id"]))


async def tenant_set_key(call: Call) -> dict[str, Any]:
    changes = _changes(call.body, key=True)
    tid = tenant_id(call.ctx)
    # A key gives no key (itself included) more than it has; a person's session
    # is bounded by its role alone.
    by = rules.issuer(call.services.control, call.ctx)
    bound = by.limits if by is not None else None

    def work(db: Any) -> ApiKey:
        return repo.set_key_limits(db, tid, call.params["key_id"], changes, bound=bound)

    return key_limits(await call.services.control.tenant_write(tid, work))


ROUTES = (
    Route.get(
        "/admin/v1/tenants/{name}/limits",
        action="admin:limits.get",
        handler=platform_get_limits,
        summary="A tenant's limits",
        response=answers.TenantLimits,
    ),
    Route.patch(
        "/admin/v1/tenants/{name}/limits",
        action="admin:limits.update",
        handler=platform_set_limits,
        summary="Set a tenant's rate limits, budgets and per-request caps (above its tier's "
        f"defaults with a grant for '{APPROVE}')",
        body=s.LimitsPatch,
        response=answers.TenantLimits,
        effects=frozenset({Effect.CHANGE_SAFEGUARDS, Effect.RAISE_LIMITS}),
        grant_target=platform_limits_target,
        grant_action=APPROVE,
    ),
    Route.patch(
        "/admin/v1/tenants/{name}/keys/{key_id}/limits",
        action="admin:limits.update",
        handler=platform_set_key,
        summary="Narrow one API key's limits (a floor its tenant's admins only tighten)",
        body=s.KeyLimitsPatch,
        response=answers.KeyLimits,
        effects=frozenset({Effect.CHANGE_SAFEGUARDS}),
    ),
    Route.get(
        "/tenant/v1/limits",
        action="tenant:limits.get",
        handler=tenant_get_limits,
        summary="Your tenant's limits",
        response=answers.TenantLimits,
    ),
    Route.get(
        "/tenant/v1/keys/{key_id}/limits",
        action="tenant:keys.limits.get",
        handler=tenant_get_key,
        summary="One of your keys' limits",
        response=answers.KeyLimits,
    ),
    Route.patch(
        "/tenant/v1/keys/{key_id}/limits",
        action="tenant:keys.limits.update",
        handler=tenant_set_key,
        summary="Narrow one of your keys' limits (never above what the platform set)",
        body=s.KeyLimitsPatch,
        response=answers.KeyLimits,
        effects=frozenset({Effect.CHANGE_SAFEGUARDS}),
    ),
)
