"""Step 2: build the immutable TenantContext from the credential, and only from it."""

from __future__ import annotations

from bulkhead.domain import TenantContext
from bulkhead.errors import PermissionDenied, Unauthenticated
from bulkhead.store import Catalog
from bulkhead.web.scope import CONTEXT, ASGIApp, Receive, Scope, Send, credential, exchange


class TenantContextMiddleware:
    def __init__(self, app: ASGIApp, *, catalog: Catalog, public: frozenset[str]):
        self.app = app
        self.catalog = catalog
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        key = credential(scope)
        snap = self.catalog.snapshot
        principal = snap.principals.get(key.principal_id)
        if principal is None:
            raise Unauthenticated("Incorrect API key provided.")
        tenant = None
        if key.tenant_id is not None:
            tenant = snap.tenants.get(key.tenant_id)
            if tenant is None:
                raise Unauthenticated("Incorrect API key provided.")
        ex = exchange(scope)
        ex.tenant_id = key.tenant_id
        ex.tenant_name = tenant.name if tenant else None
        ex.principal_id = principal.id
        if tenant is not None and not tenant.active:
            raise PermissionDenied("This tenant is suspended.")
        scope[CONTEXT] = TenantContext(
            tenant=tenant,
            principal=principal,
            role=key.role,
            credential_id=key.id,
            key_models=key.models,
        )
        await self.app(scope, receive, send)
