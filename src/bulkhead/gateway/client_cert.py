"""Step 2b: a tenant that requires client certificates is reached only with its own.

For private-line or VPN-style access a tenant can set `require_client_cert`.
The TLS listener then has already checked any presented certificate against
the internal CA (it asks for one on every handshake, but does not demand
it); this layer, which runs once the tenant context is known, demands that
the certificate is a valid X.509-SVID naming the caller's own tenant:
``spiffe://<trust-domain>/tenant/<tenant id>/client/<name>``.  Anything else
— no certificate, plaintext, another tenant's, an expired one — is a 403,
with the precise reason in the audit event.  This is on top of the
tenant's allowed client networks, which the policy layer enforces.
"""

from __future__ import annotations

import functools

from cryptography import x509

from bulkhead.errors import PermissionDenied
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.spiffe import PeerRejected, SpiffeId
from bulkhead.web.scope import CONTEXT, ASGIApp, Receive, Scope, Send, context, exchange

_REQUIRED = "This tenant accepts calls only with a client certificate issued for it."


@functools.lru_cache(maxsize=1024)
def _certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def presented_certificate(scope: Scope) -> x509.Certificate | None:
    """The client certificate of the connection, from the ASGI TLS extension."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or ()
    return _certificate(chain[0]) if chain else None


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
        cert = presented_certificate(scope)
        try:
            if cert is None or self.ca is None:
                raise PeerRejected("no client certificate")

            def own_client(sid: SpiffeId) -> bool:
                return sid.tenant == tenant_id and len(sid.path) == 4 and sid.path[2] == "client"

            self.ca.verify_peer(cert, own_client)
        except PeerRejected as exc:
            exchange(scope).reason = f"client certificate: {exc.reason}"
            raise PermissionDenied(_REQUIRED) from None
