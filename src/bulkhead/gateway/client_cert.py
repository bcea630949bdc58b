"""Step 2b: a tenant that requires client certificates is reached only with its own.

For private-line or VPN-style access a tenant can set `require_client_cert`.
The TLS listener then has already checked any presented certificate against
the internal CA (it asks for one on every handshake, but does not demand
it); this layer, which runs once the tenant context is known, demands that
the certificate is a valid X.509-SVID naming the caller's own tenant:
``spiffe://<trust-domain>/tenant/<tenant id>/client/<name>``.  Anything else
— no certificate, plaintext, another tenant's, an expired one — is a 403,
with the precise reason in the audit event.  This is on top of the
tenant's allowed client networks, which the policy layer enforces.  Signing
in (`/auth/v1`, no tenant context yet) makes the same check itself.
"""

from __future__ import annotations

from bulkhead.errors import PermissionDenied
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.spiffe import PeerRejected
from bulkhead.web.scope import CONTEXT, ASGIApp, Receive, Scope, Send, context
from bulkhead.web.tls import client_certificate

_REQUIRED = "This tenant accepts calls only with a client certificate issued for it."


class ClientCertMiddleware:
    def __init__(self, app: ASGIApp, *, ca: InternalCA | None):
        self.app = app
        self.ca = ca

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and CONTEXT in scope:
            tenant = context(scope).tenant
            if tenant is not None and tenant.config.require_client_cert:
                self._check(scope, tenant.id)
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, tenant_id: str) -> None:
        try:
            if self.ca is None:
                raise PeerRejected("no CA to check client certificates against")
            self.ca.verify_tenant_client(client_certificate(scope), tenant_id)
        except PeerRejected as exc:
            refused = PermissionDenied(_REQUIRED)
            refused.detail = f"client certificate: {exc.reason}"
            raise refused from None
