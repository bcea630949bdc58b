"""Step 2: build the immutable TenantContext from the credential, and only from it.

Its `attributes` are what policy reads of the caller: a sign-in's attributes
(an IdP's mapped claims), and the principal's own `clearance` as the platform
set it.  The platform's clearance (or, where it set none, the default) is a
ceiling: a claim from the tenant's IdP can lower it, never raise it.  A
credential acts only in a role its principal still holds, and a disabled
principal's credentials act in none.
"""

from __future__ import annotations

from bulkhead.domain import MFA_ROLES, PLATFORM_ROLES, SignedIn, TenantContext
from bulkhead.errors import PermissionDenied, Unauthenticated
from bulkhead.policy import CLEARANCE, DEFAULT_CLEARANCE
from bulkhead.store import Catalog
from bulkhead.web.scope import (
    CONTEXT,
    ASGIApp,
    Receive,
    Scope,
    Send,
    credential,
    exchange,
    set_once,
)


class TenantContextMiddleware:
    def __init__(self, app: ASGIApp, *, catalog: Catalog, public: frozenset[str]):
        self.app = app
        self.catalog = catalog
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        cred = credential(scope)
        snap = self.catalog.snapshot
        principal = snap.principals.get(cred.principal_id)
        if principal is None or principal.tenant_id != cred.tenant_id:
            raise Unauthenticated("Incorrect API key provided.")
        if principal.disabled:
            # Its keys and sessions were revoked when it was disabled; this holds regardless.
            raise Unauthenticated("This principal is disabled.", code="principal_disabled")
        if cred.role not in principal.roles:
            raise Unauthenticated(f"The principal no longer holds the {cred.role.value} role.")
        tenant = None
        if cred.tenant_id is not None:
            tenant = snap.tenants.get(cred.tenant_id)
            if tenant is None:
                raise Unauthenticated("Incorrect API key provided.")
        exchange(scope).principal(
            tenant_id=cred.tenant_id,
            tenant_name=tenant.name if tenant else None,
            principal_id=principal.id,
        )
        if tenant is not None and not tenant.active:
            raise PermissionDenied("This tenant is suspended.")
        attributes = {}
        if isinstance(cred, SignedIn):
            # Defence in depth: sign-in already refuses an admin session without a second
            # factor.  An IdP token's second factor was checked against its IdP's settings.
            if cred.kind == "session" and cred.role in MFA_ROLES and not cred.mfa:
                raise Unauthenticated(
                    f"The {cred.role.value} role needs multi-factor sign-in.", code="mfa_required"
                )
            if (cred.role in PLATFORM_ROLES) != (cred.tenant_id is None):
                raise Unauthenticated("Incorrect session token provided.")
            attributes = dict(cred.attributes)
        clearance = _clearance(principal.attributes.get("clearance"), attributes.get("clearance"))
        if clearance is not None:
            attributes["clearance"] = clearance
        ctx = TenantContext(
            tenant=tenant,
            principal=principal,
            role=cred.role,
            credential_id=cred.id,
            key_models=cred.models,
            attributes=attributes,
        )
        set_once(scope, CONTEXT, ctx)
        await self.app(scope, receive, send)


def _clearance(platform: object, claimed: object) -> str | None:
    """The caller's clearance: the platform's (else the default) as a ceiling a claim may lower.

    None when neither is set (policy then reads the default).  A claimed level
    that is not a clearance counts as the lowest, "public".
    """
    if claimed is None:
        return None if platform is None else str(platform)
    ceiling = DEFAULT_CLEARANCE if platform is None else str(platform)
    level = str(claimed) if str(claimed) in CLEARANCE else "public"
    return min((ceiling, level), key=lambda name: CLEARANCE.get(name, -1))
