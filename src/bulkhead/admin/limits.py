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

from bulkhead.admin import schemas as s
from bulkhead.admin.control import Control
from bulkhead.admin.effects import Effect, Exempt
from bulkhead.admin.quotas import APPROVE, raise_target
from bulkhead.admin.router import Call, Route
from bulkhead.admin.tenant import issuer, tenant_id
from bulkhead.domain import ApiKey, Tenant
from bulkhead.errors import InvalidRequest, NotFound
from bulkhead.limits.policy import KEY_QUOTAS, QUOTAS, TIER_DEFAULTS, check_quotas, effective
from bulkhead.store import repo

P = "/admin/v1/tenants/{name}"


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


def platform_routes(control: Control) -> list[Route]:
    async def get_limits(call: Call) -> dict[str, Any]:
        return tenant_limits(
            await control.read(lambda db: repo.get_tenant(db, call.params["name"]))
        )

    async def limits_target(call: Call) -> str | Exempt:
        return await raise_target(control, call.params["name"], _changes(call.body, key=False))

    async def set_limits(call: Call) -> dict[str, Any]:
        changes = _changes(call.body, key=False)
        return tenant_limits(
            await control.write(lambda db: repo.set_tenant_limits(db, call.params["name"], changes))
        )

    async def set_key(call: Call) -> dict[str, Any]:
        changes = _changes(call.body, key=True)

        def work(db: Any) -> ApiKey:
            tenant = repo.get_tenant(db, call.params["name"])
            return repo.set_key_limits(db, tenant.id, call.params["key_id"], changes, floor=True)

        return key_limits(await control.write(work))

    return [
        Route("GET", f"{P}/limits", "admin:limits.get", get_limits, "A tenant's limits"),
        Route(
            "PATCH",
            f"{P}/limits",
            "admin:limits.update",
            set_limits,
            "Set a tenant's rate limits, budgets and per-request caps (above its tier's "
            f"defaults with a grant for '{APPROVE}')",
            s.LimitsPatch,
            effects=frozenset({Effect.CHANGE_SAFEGUARDS, Effect.RAISE_LIMITS}),
            grant_target=limits_target,
            grant_action=APPROVE,
        ),
        Route(
            "PATCH",
            f"{P}/keys/{{key_id}}/limits",
            "admin:limits.update",
            set_key,
            "Narrow one API key's limits (a floor its tenant's admins only tighten)",
            s.KeyLimitsPatch,
            effects=frozenset({Effect.CHANGE_SAFEGUARDS}),
        ),
    ]


def tenant_routes(control: Control) -> list[Route]:
    async def get_limits(call: Call) -> dict[str, Any]:
        tid = tenant_id(call.ctx)
        tenant = await control.tenant_read(tid, lambda db: repo.get_tenant_by_id(db, tid))
        return tenant_limits(tenant)

    async def get_key(call: Call) -> dict[str, Any]:
        tid = tenant_id(call.ctx)
        keys = await control.tenant_read(tid, lambda db: repo.list_keys(db, tid))
        return key_limits(_key(keys, call.params["key_id"]))

    async def set_key(call: Call) -> dict[str, Any]:
        changes = _changes(call.body, key=True)
        tid = tenant_id(call.ctx)
        # A key gives no key (itself included) more than it has; a person's session
        # is bounded by its role alone.
        by = issuer(control, call.ctx)
        bound = by.limits if by is not None else None

        def work(db: Any) -> ApiKey:
            return repo.set_key_limits(db, tid, call.params["key_id"], changes, bound=bound)

        return key_limits(await control.tenant_write(tid, work))

    return [
        Route("GET", "/tenant/v1/limits", "tenant:limits.get", get_limits, "Your tenant's limits"),
        Route(
            "GET",
            "/tenant/v1/keys/{key_id}/limits",
            "tenant:keys.limits.get",
            get_key,
            "One of your keys' limits",
        ),
        Route(
            "PATCH",
            "/tenant/v1/keys/{key_id}/limits",
            "tenant:keys.limits.update",
            set_key,
            "Narrow one of your keys' limits (never above what the platform set)",
            s.KeyLimitsPatch,
            effects=frozenset({Effect.CHANGE_SAFEGUARDS}),
        ),
    ]
