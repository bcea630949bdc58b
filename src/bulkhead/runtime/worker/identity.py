"""The worker's side of mutual TLS: its SVIDs from stdin and the check of its caller.

In mTLS mode the supervisor writes, after the token line (and the weights of
kinds that get them), one batch of frames (`frames`) holding ``ca.pem`` and
``svid.pem`` (certificate and key), and keeps stdin open to write a fresh
batch at each half of the SVID's lifetime.  The worker reads the first batch
before it loads its model and the later ones on a thread; each goes straight
into an OpenSSL context through memory (`bulkhead.identity.tls`), never into
a file.  A closed stdin means the gateway is gone: no more renewals come, and
the worker keeps serving until its certificate lapses or it is stopped.

The worker admits one caller, ``spiffe://<trust domain>/gateway``.  The
check runs once per connection, at its first request; the handshake has
already checked the chain against the CA.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import BinaryIO, Final

from bulkhead.identity.spiffe import PeerRejected
from bulkhead.identity.tls import ReplaceableIdentity, peer_certificate

from . import frames
from .errors import ApiError

GATEWAY_PATH: Final = "gateway"
IDENTITY_FILES: Final = ("ca.pem", "svid.pem")
MAX_PEM_BYTES: Final = 64 * 1024

logger = logging.getLogger(__name__)


def read_identity(stream: BinaryIO) -> tuple[bytes, bytes]:
    """One batch of SVID frames: the CA certificate, and the worker's certificate and key."""
    files = frames.decode(stream)
    if tuple(name for name, _ in files) != IDENTITY_FILES:
        raise frames.FrameError("an identity batch holds ca.pem and svid.pem, in that order")
    if any(len(data) > MAX_PEM_BYTES for _, data in files):
        raise frames.FrameError("an identity file is too large")
    return files[0][1], files[1][1]


class WorkerIdentity:
    """The worker's current SVID, replaced whenever the supervisor sends a new one."""

    def __init__(self, ca_pem: bytes, svid_pem: bytes):
        self._identity = ReplaceableIdentity(ca_pem, svid_pem)

    @property
    def replacements(self) -> int:
        return self._identity.replacements

    def server_context(self) -> ssl.SSLContext:
        return self._identity.server_context()

    def check_peer(self, ssl_object: ssl.SSLObject | None) -> None:
        """Admit the gateway alone; anything else is a 403 with the reason logged here."""
        try:
            cert = peer_certificate(ssl_object)
            if cert is None:
                raise PeerRejected("no certificate")
            self._identity.anchor.verify_peer(cert, GATEWAY_PATH)
        except PeerRejected as exc:
            logger.warning("Refused a caller's certificate: %s.", exc.reason)
            raise ApiError(403, "The caller's certificate is not accepted.") from None

    def follow(self, stream: BinaryIO) -> threading.Thread:
        """Read replacement SVIDs from `stream` on a daemon thread until it closes."""
        thread = threading.Thread(target=self._follow, args=(stream,), daemon=True)
        thread.start()
        return thread

    def _follow(self, stream: BinaryIO) -> None:
        while stream.peek(1):  # type: ignore[attr-defined]
            try:
                self._identity.replace(*read_identity(stream))
            except (frames.FrameError, ValueError, ssl.SSLError) as exc:
                # A broken batch leaves the pipe unframed: stop, keep the current SVID.
                logger.error("Stopped reading new certificates: %s.", exc)
                return
            logger.info("Switched to a new certificate.")
        logger.warning("The supervisor closed stdin; no more certificates will come.")
