"""TLS contexts: the public listener, and mutual TLS between Bulkhead's own workloads.

Public listener: TLS 1.2 or newer, ECDHE key exchange with AEAD ciphers only
(TLS 1.3 suites are all AEAD), no compression or renegotiation.  When a CA is
given, client certificates are *requested* (CERT_OPTIONAL): the handshake
checks any certificate presented against the CA, and the gateway decides per
tenant whether one is required.

Mutual TLS between workloads is TLS 1.3 only (both ends are ours), requires
a certificate on both sides, and trusts the internal CA alone.  Host names
are not checked: each side checks the peer's SPIFFE ID with
`InternalCA.verify_peer` instead.

Python's `ssl` loads certificates and keys only from files, so an SVID is
handed to OpenSSL through an anonymous in-memory file (``memfd_create``, read
back through ``/proc/self/fd``), which never reaches a disk; where there is
no memfd, a 0600 file in a fresh 0700 directory that is removed as soon as
OpenSSL has read it.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from bulkhead.crypto import EXPORT_KEY_MATERIAL
from bulkhead.identity.ca import DEFAULT_LIFETIME, InternalCA, Svid, TrustAnchor
from bulkhead.identity.spiffe import SpiffeId

MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
_HARDENING = ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION


def public_server_context(
    cert_file: str | Path, key_file: str | Path, *, client_ca_pem: bytes | None = None
) -> ssl.SSLContext:
    """The context of the public API listener (TLS 1.2+, modern ciphers)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(MODERN_CIPHERS)
    ctx.options |= _HARDENING
    ctx.load_cert_chain(str(cert_file), str(key_file))
    if client_ca_pem is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cadata=client_ca_pem.decode("ascii"))
    return ctx


def mtls_context(ca: TrustAnchor, svid: Svid, *, server: bool) -> ssl.SSLContext:
    """A TLS 1.3 context that presents `svid` and requires a peer certificate from `ca`."""
    pem = svid.cert_pem + svid.key.reveal_pem(EXPORT_KEY_MATERIAL)
    return mtls_context_from_pem(ca.cert_pem, pem, server=server)


def mtls_context_from_pem(ca_pem: bytes, svid_pem: bytes, *, server: bool) -> ssl.SSLContext:
    """`mtls_context` from PEM: a certificate and its key as a worker gets them on stdin."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= _HARDENING
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
    load_pem_chain(ctx, svid_pem)
    return ctx


def load_svid(ctx: ssl.SSLContext, svid: Svid) -> None:
    """Load certificate and key into `ctx` without writing the key to a disk."""
    load_pem_chain(ctx, svid.cert_pem + svid.key.reveal_pem(EXPORT_KEY_MATERIAL))


def load_pem_chain(ctx: ssl.SSLContext, pem: bytes) -> None:
    """Load a PEM certificate and key into `ctx` through memory, never a file on disk."""
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("bulkhead-svid", os.MFD_CLOEXEC)
        try:
            _write_all(fd, pem)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    directory = tempfile.mkdtemp(prefix="bulkhead-svid-")  # mode 0700
    try:
        path = os.path.join(directory, "svid.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, pem)
        finally:
            os.close(fd)
        ctx.load_cert_chain(path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> x509.Certificate | None:
    """The certificate the peer presented (already chain-checked by the handshake), if any."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


class RotatingIdentity:
    """A workload's SVID, re-issued at half its lifetime without dropping a connection.

    `context()` is for clients: it returns the current context, rotating first
    when due (at half-life, or at once when the CA's trust bundle or issuing
    version changed: `InternalCA.fingerprint`); a new context means new
    connections use the new certificate and bundle while pooled ones finish on
    the old.  `server_context()` is one fixed context for
    a listener: its SNI callback, which OpenSSL runs on every ClientHello (with
    or without a server name), moves each new handshake onto the current
    context, so the listener never restarts and open connections are untouched.
    """

    def __init__(
        self,
        ca: InternalCA,
        spiffe_id: SpiffeId | str,
        *,
        server: bool,
        lifetime: timedelta = DEFAULT_LIFETIME,
        clock: Callable[[], datetime] | None = None,
    ):
        self.ca, self.server, self.lifetime = ca, server, lifetime
        self.spiffe_id = spiffe_id
        self._clock = clock or ca._clock
        self._lock = threading.Lock()
        self.rotations = 0
        self._svid, self._ctx, self._renew_at = *self._issue(), self._next_renewal()

    def _next_renewal(self) -> datetime:
        return self._clock() + self.lifetime / 2

    def _issue(self) -> tuple[Svid, ssl.SSLContext]:
        self._issued_under = self.ca.fingerprint()
        svid = self.ca.issue(self.spiffe_id, self.lifetime)
        return svid, mtls_context(self.ca, svid, server=self.server)

    @property
    def svid(self) -> Svid:
        return self._svid

    def due(self) -> bool:
        return self._clock() >= self._renew_at or self.ca.fingerprint() != self._issued_under

    def rotate_if_due(self) -> bool:
        if not self.due():
            return False
        with self._lock:
            if not self.due():
                return False
            self._svid, self._ctx = self._issue()
            self._renew_at = self._next_renewal()
            self.rotations += 1
            return True

    def context(self) -> ssl.SSLContext:
        self.rotate_if_due()
        return self._ctx

    def server_context(self) -> ssl.SSLContext:
        front = mtls_context(self.ca, self._svid, server=True)

        def switch(obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
            obj.context = self.context()

        front.sni_callback = switch
        return front


class ClientCaContext:
    """The public listener's TLS context, whose client-certificate trust follows the CA.

    Tenants' client certificates are checked by the handshake against the
    internal CA's trust bundle; when the CA rotates, the bundle changes and
    new handshakes move onto a context built with it (the SNI callback, as in
    `RotatingIdentity.server_context`), so certificates of the old version and
    of the new one are both accepted while both are trusted.
    """

    def __init__(self, cert_file: str | Path, key_file: str | Path, ca: InternalCA):
        self._files, self._ca = (cert_file, key_file), ca
        self._lock = threading.Lock()
        self._built = self._build()
        self._front = public_server_context(*self._files, client_ca_pem=ca.cert_pem)
        self._front.sni_callback = self._switch

    def _build(self) -> tuple[tuple[int, int], ssl.SSLContext]:
        seen = self._ca.fingerprint()
        return seen, public_server_context(*self._files, client_ca_pem=self._ca.cert_pem)

    def _current(self) -> ssl.SSLContext:
        if self._built[0] != self._ca.fingerprint():
            with self._lock:
                if self._built[0] != self._ca.fingerprint():
                    self._built = self._build()
        return self._built[1]

    def _switch(self, obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        obj.context = self._current()

    def server_context(self) -> ssl.SSLContext:
        return self._front


class ReplaceableIdentity:
    """A listener's identity that its owner replaces from outside.

    A worker holds no CA key, so it cannot rotate by itself: the supervisor
    sends it a fresh SVID at half its lifetime, and `replace` swaps it in.  As
    with `RotatingIdentity.server_context`, the listener's SNI callback moves
    every new handshake onto the newest context; open connections keep theirs.
    """

    def __init__(self, ca_pem: bytes, svid_pem: bytes):
        self.anchor = TrustAnchor.from_pem(ca_pem)
        self._ctx = mtls_context_from_pem(ca_pem, svid_pem, server=True)
        # The listener's own context starts as a copy of the first, so that a
        # handshake is complete even before its SNI callback has run.
        self._front = mtls_context_from_pem(ca_pem, svid_pem, server=True)
        self.replacements = 0

    def replace(self, ca_pem: bytes, svid_pem: bytes) -> None:
        anchor = TrustAnchor.from_pem(ca_pem)
        if anchor.trust_domain != self.anchor.trust_domain:
            raise ValueError("a replacement SVID stays in its trust domain")
        # Each assignment is atomic; a handshake sees the old pair or the new one.
        self._ctx, self.anchor = mtls_context_from_pem(ca_pem, svid_pem, server=True), anchor
        self.replacements += 1

    def server_context(self) -> ssl.SSLContext:
        def switch(obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
            obj.context = self._ctx

        self._front.sni_callback = switch
        return self._front
