"""Mutual TLS between workloads: the peer's SPIFFE ID checked before any request.

The TLS handshake checks that the peer's certificate chains to the internal
CA; host names mean nothing between workloads (a worker listens on a Unix
socket), so each new connection's peer SPIFFE ID is then checked with
`TrustAnchor.verify_peer` (`exact_peer`, `verify_peer`), before a byte of the
request is written: a peer with the wrong ID never sees a prompt or a token,
and the caller gets a 502.  The client's own transport
(`bulkhead.runtime.h1pool`) and aiohttp's connectors
(`bulkhead.runtime.connect`) use the same two; this module does not import
aiohttp, so the serving path does not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cryptography import x509

from bulkhead.identity.spiffe import PeerRejected, SpiffeId
from bulkhead.identity.tls import RotatingIdentity, peer_certificate

log = logging.getLogger("bulkhead.upstream")


class PeerRefused(ConnectionError):
    """A peer whose certificate is not accepted: unreachable, as far as the caller learns."""


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
        raise PeerRefused("the connection closed during the handshake")
    try:
        check(peer_certificate(transport.get_extra_info("ssl_object")))
    except PeerRejected as exc:
        transport.close()
        # Precise inside, opaque outside: the caller sees only an unreachable upstream.
        log.warning("refused a model server's certificate: %s", exc.reason)
        raise PeerRefused("the peer's certificate is not accepted") from None
