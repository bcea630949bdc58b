"""A tenant's guard settings: platform admins for any tenant, tenant admins for their own.

Only the settings someone set are stored (in the tenant's configuration);
the rest follow `GuardConfig`'s defaults, so a better default reaches every
tenant that did not choose otherwise.  What a platform admin sets is a floor
(`config.guard`): the tenant's admins set their own on top
(`config.tenant_guard`), and a setting that would loosen the floor is
refused, naming it (`bulkhead.guard.looser_settings`).  Every change is
validated as a whole by `GuardConfig` before it is stored, and bumps the
catalog version, so each replica guards with it from its next poll (the one
that wrote, at once).  The tenant's routes read and write in tenant
transactions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from bulkhead.admin import answers
from bulkhead.admin import schemas as s
from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.admin.rules import tenant_id
from bulkhead.domain import Tenant
from bulkhead.errors import InvalidRequest
from bulkhead.guard import GuardConfig, looser_settings, settings_of
from bulkhead.store import lifecycle, repo

FLOOR, OWN = "guard", "tenant_guard"  # where each layer is kept in the tenant's config
_SAFEGUARDS = frozenset({Effect.CHANGE_SAFEGUARDS})
MAX_LINK_HOSTS = 256


def guard_json(tenant: Tenant, layer: str) -> dict[str, Any]:
    """The effective settings; which of them this surface's layer set; the platform's floor."""
    config = tenant.config
    effective = settings_of(config.guard, config.tenant_guard).to_dict()
    stored = config.guard if layer == FLOOR else config.tenant_guard
    return {
        "tenant": tenant.name,
        "guard": effective,
        "set": sorted(stored),
        "platform": sorted(config.guard),
    }


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
    # Every link of every answer is tested against each host.  Checked where settings are
    # written: a floor stored before the bound still parses (and still guards).
    if len(config.allowed_link_hosts) > MAX_LINK_HOSTS:
        raise InvalidRequest(
            f"Invalid guard setting: allowed_link_hosts holds at most {MAX_LINK_HOSTS} hosts.",
            param="allowed_link_hosts",
        )
    normal = config.to_dict()
    return {name: normal[name] for name in out}


def _changes(body: s.GuardPatch) -> dict[str, Any]:
    changes = body.model_dump(mode="json", exclude_unset=True)
    if not changes:
        raise InvalidRequest("Name at least one guard setting to change.")
    return changes


def _update(db: Session, tenant: Tenant, layer: str, changes: Mapping[str, Any]) -> Tenant:
    stored = tenant.config.guard if layer == FLOOR else tenant.config.tenant_guard
    guard = merged(stored, changes)
    if layer == OWN:
        _above_floor(tenant.config.guard, guard)
    return lifecycle.set_config(db, tenant.name, {layer: guard})


def _above_floor(floor: Mapping[str, Any], own: Mapping[str, Any]) -> None:
    try:
        loose = looser_settings(floor, own)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"Invalid guard setting: {exc}.", param="guard") from None
    if loose:
        raise InvalidRequest(
            f"The platform set '{loose[0]}' for your tenant; you may only tighten it "
            f"(platform settings: {', '.join(sorted(floor))}).",
            param=loose[0],
        )


async def platform_get_guard(call: Call) -> dict[str, Any]:
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    return guard_json(tenant, FLOOR)


async def platform_set_guard(call: Call) -> dict[str, Any]:
    changes = _changes(call.body)

    def work(db: Session) -> Tenant:
        return _update(db, repo.get_tenant(db, call.params["name"]), FLOOR, changes)

    return guard_json(await call.services.control.write(work), FLOOR)


async def tenant_get_guard(call: Call) -> dict[str, Any]:
    tid = tenant_id(call.ctx)
    return guard_json(
        await call.services.control.tenant_read(tid, lambda db: repo.get_tenant_by_id(db, tid)), OWN
    )


async def tenant_set_guard(call: Call) -> dict[str, Any]:
    changes = _changes(call.body)
    tid = tenant_id(call.ctx)

    def work(db: Session) -> Tenant:
        return _update(db, repo.get_tenant_by_id(db, tid), OWN, changes)

    return guard_json(await call.services.control.tenant_write(tid, work), OWN)


ROUTES = (
    Route.get(
        "/admin/v1/tenants/{name}/guard",
        action="admin:guard.get",
        handler=platform_get_guard,
        summary="A tenant's guard settings",
        response=answers.GuardSettings,
    ),
    Route.patch(
        "/admin/v1/tenants/{name}/guard",
        action="admin:guard.update",
        handler=platform_set_guard,
        summary="Change a tenant's guard settings (a floor its admins only tighten)",
        body=s.GuardPatch,
        response=answers.GuardSettings,
        effects=_SAFEGUARDS,
    ),
    Route.get(
        "/tenant/v1/guard",
        action="tenant:guard.get",
        handler=tenant_get_guard,
        summary="Your guard settings",
        response=answers.GuardSettings,
    ),
    Route.patch(
        "/tenant/v1/guard",
        action="tenant:guard.update",
        handler=tenant_set_guard,
        summary="Change your tenant's guard settings (only tighter than what the platform set)",
        body=s.GuardPatch,
        response=answers.GuardSettings,
        effects=_SAFEGUARDS,
    ),
)
