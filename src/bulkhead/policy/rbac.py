"""Role-based authorization, deny by default.

Actions are named `<surface>:<operation>`: `v1:` for the OpenAI-compatible
API, `admin:` for the platform API, `tenant:` for tenant self-service.  A
role may perform only the actions listed for it; anything unlisted is
denied.  Cross-tenant access is not decided here: every tenant-scoped lookup
is keyed by the caller's own tenant, so another tenant's object is simply
not found.  The attribute-based Cedar policies of a later stage plug in
behind the same `Authorizer` protocol.
"""

from __future__ import annotations

from typing import Protocol

from bulkhead.domain import Role, TenantContext
from bulkhead.errors import PermissionDenied

V1 = frozenset(
    {
        "v1:chat",
        "v1:completions",
        "v1:embeddings",
        "v1:models.list",
        "v1:files.create",
        "v1:files.list",
        "v1:files.get",
        "v1:files.content",
        "v1:files.delete",
    }
)
ADMIN = frozenset(
    {
        "admin:tenants.create",
        "admin:tenants.list",
        "admin:tenants.get",
        "admin:tenants.update",
        "admin:principals.create",
        "admin:principals.list",
        "admin:keys.create",
        "admin:keys.list",
        "admin:keys.revoke",
        "admin:models.create",
        "admin:models.list",
        "admin:models.grant",
        "admin:models.revoke_grant",
        "admin:models.import",
        "admin:workers.list",
        "admin:audit.list",
        "admin:audit.export.get",
        "admin:audit.proof.get",
        "admin:audit.keys.list",
        "admin:audit.keys.rotate",
        "admin:kms.get",
        "admin:kms.rotate",
        "admin:kms.retire",
        "admin:tenants.configure",
        "admin:tenants.delete",
    }
)
TENANT = frozenset(
    {
        "tenant:self.get",
        "tenant:keys.create",
        "tenant:keys.list",
        "tenant:keys.revoke",
        "tenant:principals.create",
        "tenant:principals.list",
        "tenant:usage.get",
        "tenant:models.list",
        "tenant:audit.list",
        "tenant:audit.export.get",
        "tenant:audit.proof.get",
        "tenant:audit.keys.list",
        "tenant:exchanges.list",
        "tenant:exchanges.get",
    }
)
ACTIONS = V1 | ADMIN | TENANT


def _reads(actions: frozenset[str]) -> frozenset[str]:
    return frozenset(a for a in actions if a.endswith((".list", ".get")))


_ALLOWED: dict[Role, frozenset[str]] = {
    Role.PLATFORM_ADMIN: ADMIN,
    Role.PLATFORM_AUDITOR: _reads(ADMIN),
    Role.TENANT_ADMIN: TENANT | V1,
    Role.MODEL_DEVELOPER: V1,
    Role.END_USER: V1,
    Role.TENANT_AUDITOR: _reads(TENANT),
}


class Authorizer(Protocol):
    def authorize(self, ctx: TenantContext, action: str) -> None:
        """Return if `ctx` may perform `action`; raise `PermissionDenied` otherwise."""


class RoleAuthorizer:
    """The static role table above; no state beyond it."""

    def authorize(self, ctx: TenantContext, action: str) -> None:
        if action not in ACTIONS:
            raise PermissionDenied(f"unknown action '{action}'")
        if action not in _ALLOWED.get(ctx.role, frozenset()):
            raise PermissionDenied(f"role '{ctx.role.value}' may not perform '{action}'")
        if not ctx.is_platform and ctx.tenant is None:
            raise PermissionDenied("credential has no tenant")
