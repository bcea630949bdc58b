"""Connectors that speak mutual TLS and check the peer's SPIFFE ID before any request.

The TLS handshake checks that the peer's certificate chains to the internal
CA; host names mean nothing between workloads (a worker listens on a Unix
socket), so the connector then checks the peer's SPIFFE ID itself with
`TrustAnchor.verify_peer`.  Both happen when a connection is made, before
aiohttp writes a byte of the request onto it: a peer with the wrong ID never
sees a prompt or a token, and the caller gets a 502.

aiohttp's `UnixConnector` does not do TLS, so `MutualTlsUnixConnector`
makes its connections itself; `MutualTlsTcpConnector` lets aiohttp connect
(with the client context the request passes) and checks the result.  The
client's own transport (`bulkhead.runtime.h1pool`) checks each new
connection with the same `exact_peer` and `verify_peer`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.client_exceptions import UnixClientConnectorError
from cryptography import x509

from bulkhead.identity.spiffe import PeerRejected, SpiffeId
from bulkhead.identity.tls import RotatingIdentity, peer_certificate
from bulkhead.runtime.connect import EgressTcpConnector
from bulkhead.runtime.egress import EgressPolicy

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace

log = logging.getLogger("bulkhead.upstream")

PeerCheck = Callable[[x509.Certificate | None], SpiffeId]


def exact_peer(identity: RotatingIdentity, peer_id: str) -> PeerCheck:
    """A check that accepts only a valid SVID of our CA naming exactly `peer_id`."""
    wanted = SpiffeId.parse(peer_id)

    def check(cert: x509.Certificate | None) -> SpiffeId:
        if cert is None:
            raise PeerRejected("no certificate")
        return identity.ca.verify_peer(cert, lambda sid: sid == wanted)

    return check


def verify_peer(transport: asyncio.BaseTransport | None, check: PeerCheck) -> None:
    """Close the connection and refuse it unless its peer's certificate passes `check`."""
    if transport is None:
        raise aiohttp.ClientConnectionError("the connection closed during the handshake")
    try:
        check(peer_certificate(transport.get_extra_info("ssl_object")))
    except PeerRejected as exc:
        transport.close()
        # Precise inside, opaque outside: the caller sees only an unreachable upstream.
        log.warning("refused a model server's certificate: %s", exc.reason)
        raise aiohttp.ClientConnectionError("the peer's certificate is not accepted") from None


class MutualTlsUnixConnector(aiohttp.UnixConnector):
    """TLS over a Unix socket, presenting the gateway's current SVID."""

    def __init__(
        self,
        path: str,
        *,
        context: Callable[[], ssl.SSLContext],
        check: PeerCheck,
        limit: int = 64,
    ):
        super().__init__(path=path, limit=limit)
        self._context, self._check = context, check

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        try:
            async with asyncio.timeout(timeout.sock_connect):
                # An empty server name sends no SNI and checks no host name (the
                # context has check_hostname off); the SPIFFE ID is checked below.
                transport, proto = await self._loop.create_unix_connection(
                    self._factory, self.path, ssl=self._context(), server_hostname=""
                )
        except OSError as exc:
            raise UnixClientConnectorError(self.path, req.connection_key, exc) from exc
        verify_peer(transport, self._check)
        return proto


class MutualTlsTcpConnector(EgressTcpConnector):
    """TCP with the client context each request passes as ``ssl=``; the peer is checked.

    The egress policy holds first (`EgressTcpConnector`), then the peer's SPIFFE ID.
    """

    def __init__(self, *, check: PeerCheck, limit: int, policy: EgressPolicy):
        super().__init__(policy=policy, limit=limit)
        self._check = check

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        proto = await super()._create_connection(req, traces, timeout)
        verify_peer(proto.transport, self._check)
        return proto
