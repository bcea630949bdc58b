"""The rules the platform (/admin/v1) and tenant (/tenant/v1) surfaces share.

Who may hand out which role, how long a new key may live, which key the
caller acts with, and how far a key or principal it issues may reach: one
copy here, used by both surfaces' key and principal routes (and the platform's
own principals, `admin/platform/operators.py`).

A key issues nothing broader than itself: a key it creates or rotates has no
role above its own, no model outside its scope, no later expiry and no looser
limits (a person's session is bounded by its role alone, so a key held to
models, an expiry or limits manages no principals).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bulkhead.admin.control import Control
from bulkhead.domain import TENANT_ROLES, ApiKey, Principal, Role, TenantContext
from bulkhead.errors import ModelNotFound, PermissionDenied, RuleRefused
from bulkhead.limits.policy import looser

# A tenant admin may hand out any tenant role, since none ranks above its own;
# platform roles are never grantable from /tenant/v1.
_GRANTABLE = {Role.TENANT_ADMIN: TENANT_ROLES}


def tenant_id(ctx: TenantContext) -> str:
    """The caller's own tenant, from its credential (the only tenant /tenant/v1 reaches)."""
    assert ctx.tenant is not None  # The chain admits only tenant credentials there.
    return ctx.tenant.id


def tenant_name(ctx: TenantContext) -> str | None:
    return ctx.tenant.name if ctx.tenant else None


def expiry(seconds: int | None) -> datetime | None:
    return datetime.now(UTC) + timedelta(seconds=seconds) if seconds else None


def bounded_expiry(by: ApiKey | None, expires_at: datetime | None) -> datetime | None:
    """A new key's expiry: never after the issuer's, which it inherits if none is given."""
    if by is None or by.expires_at is None:
        return expires_at
    if expires_at is None:
        return by.expires_at
    if expires_at > by.expires_at:
        raise RuleRefused(
            f"A key you create cannot outlive your own (it expires {by.expires_at.isoformat()}).",
            param="expires_in_s",
            rule="rules.bounded_expiry",
        )
    return expires_at


def issuer(control: Control, ctx: TenantContext) -> ApiKey | None:
    """The API key the caller acts with, of its own surface; None for a person's session."""
    key = control.catalog.snapshot.keys.get(ctx.credential_id)
    return key if key is not None and key.tenant_id == ctx.tenant_id else None


def tenant_roles_only(roles: Iterable[Role]) -> None:
    """A platform admin gives a tenant's principals and keys tenant roles only."""
    if not set(roles) <= TENANT_ROLES:
        raise RuleRefused(
            "Tenant principals and keys take tenant roles only.",
            param="roles",
            rule="rules.tenant_roles_only",
        )


def grantable(ctx: TenantContext, roles: Iterable[Role]) -> None:
    """Refuse a role the caller may not hand out in its own tenant."""
    allowed = _GRANTABLE.get(ctx.role, frozenset())
    for role in roles:
        if role not in allowed:
            raise RuleRefused(
                f"You may not grant the role '{role.value}'.", param="roles", rule="rules.grantable"
            )


def holds(principal: Principal | None, role: Role) -> None:
    """A key made for a principal acts in one of the principal's own roles."""
    if principal is not None and role not in principal.roles:
        raise RuleRefused(
            "The principal does not hold that role.", param="role", rule="rules.holds"
        )


def scoped_models(by: ApiKey | None, models: list[str] | None) -> list[str] | None:
    """A new key's models: within the issuer's scope, which it inherits if none are given."""
    if by is None or by.models is None:
        return models
    if models is None:
        return sorted(by.models)
    for model in models:
        if model not in by.models:
            raise ModelNotFound(model)
    return models


def no_broader(by: ApiKey | None, key: ApiKey) -> None:
    """Refuse to issue `key` again with `by` if it reaches further (models, expiry, limits)."""
    if by is None:
        return
    models = by.models is not None and (key.models is None or not key.models <= by.models)
    later = by.expires_at is not None and (key.expires_at is None or key.expires_at > by.expires_at)
    limits = any(looser((key.limits or {}).get(n), v) for n, v in (by.limits or {}).items())
    if models or later or limits:
        raise PermissionDenied(
            "That key reaches further than yours (models, expiry or limits): rotate it with a "
            "key that covers it."
        )


def unrestricted(by: ApiKey | None) -> None:
    """Refuse principal management to a key held to models, an expiry or limits.

    A principal's role reaches as far as its role does: a person signed in as it
    (password or the tenant's IdP) is bounded by that role alone.  So a key that
    is itself bounded must not make or change principals, or it would issue, at
    one remove, something broader than itself.
    """
    if by is not None and (by.models is not None or by.expires_at is not None or by.limits):
        raise PermissionDenied(
            "Your key is held to models, an expiry or limits: manage principals with an "
            "unrestricted credential."
        )
