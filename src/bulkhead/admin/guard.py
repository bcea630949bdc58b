"""A tenant's guard settings: platform admins for any tenant, tenant admins for their own.

Only the settings someone set are stored (in the tenant's configuration);
the rest follow `GuardConfig`'s defaults, so a better default reaches every
tenant that did not choose otherwise.  Every change is validated as a whole
by `GuardConfig` before it is stored, and bumps the catalog version, so each
replica guards with it from its next poll (the one that wrote, at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from bulkhead.admin import schemas as s
from bulkhead.admin.control import Control
from bulkhead.admin.router import Call, Route
from bulkhead.admin.tenant import tenant_id
from bulkhead.domain import Tenant
from bulkhead.errors import InvalidRequest
from bulkhead.guard import GuardConfig
from bulkhead.store import lifecycle, repo

P = "/admin/v1/tenants/{name}/guard"


def guard_json(tenant: Tenant) -> dict[str, Any]:
    """The effective settings, and which of them the tenant set itself."""
    stored = tenant.config.guard
    try:
        effective = GuardConfig.from_dict(stored).to_dict()
    except (ValueError, TypeError):
        # The gateway guards with the defaults in this case; show what it does.
        effective, stored = GuardConfig().to_dict(), {}
    return {"tenant": tenant.name, "guard": effective, "set": sorted(stored)}


def merged(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The settings to store: `changes` over `stored`, validated, and only the keys set.

    A null removes a setting (its default applies again); `entities` merges
    entity by entity, where a null removes that entity's override.
    """
    out = dict(stored)
    for name, value in changes.items():
        if name == "entities" and value is not None:
            entities = {**dict(out.get("entities") or {}), **value}
            value = {k: v for k, v in entities.items() if v is not None} or None
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    try:
        config = GuardConfig.from_dict(out)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"Invalid guard setting: {exc}.", param="guard") from None
    normal = config.to_dict()
    return {name: normal[name] for name in out}


def _changes(body: s.GuardPatch) -> dict[str, Any]:
    changes = body.model_dump(mode="json", exclude_unset=True)
    if not changes:
        raise InvalidRequest("Name at least one guard setting to change.")
    return changes


def _update(db: Session, tenant: Tenant, changes: Mapping[str, Any]) -> Tenant:
    guard = merged(tenant.config.guard, changes)
    return lifecycle.set_config(db, tenant.name, {"guard": guard})


def platform_routes(control: Control) -> list[Route]:
    async def get_guard(call: Call) -> dict[str, Any]:
        return guard_json(await control.read(lambda db: repo.get_tenant(db, call.params["name"])))

    async def set_guard(call: Call) -> dict[str, Any]:
        changes = _changes(call.body)

        def work(db: Session) -> Tenant:
            return _update(db, repo.get_tenant(db, call.params["name"]), changes)

        return guard_json(await control.write(work))

    return [
        Route("GET", P, "admin:guard.get", get_guard, "A tenant's guard settings"),
        Route(
            "PATCH",
            P,
            "admin:guard.update",
            set_guard,
            "Change a tenant's guard settings (PII, secrets, injection, output, logprobs)",
            s.GuardPatch,
        ),
    ]


def tenant_routes(control: Control) -> list[Route]:
    async def get_guard(call: Call) -> dict[str, Any]:
        tid = tenant_id(call.ctx)
        return guard_json(await control.read(lambda db: repo.get_tenant_by_id(db, tid)))

    async def set_guard(call: Call) -> dict[str, Any]:
        changes = _changes(call.body)
        tid = tenant_id(call.ctx)

        def work(db: Session) -> Tenant:
            return _update(db, repo.get_tenant_by_id(db, tid), changes)

        return guard_json(await control.write(work))

    return [
        Route("GET", "/tenant/v1/guard", "tenant:guard.get", get_guard, "Your guard settings"),
        Route(
            "PATCH",
            "/tenant/v1/guard",
            "tenant:guard.update",
            set_guard,
            "Change your tenant's guard settings",
            s.GuardPatch,
        ),
    ]
