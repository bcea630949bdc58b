"""The internal CA: short-lived X.509-SVIDs for workloads, and the checks on a peer's.

The CA is created on first use.  Its certificate is public
(``<dir>/ca.pem``); its private key exists on disk only envelope-encrypted
under the KEK of the platform pseudo-tenant ``_platform`` in the KMS
(``<dir>/ca.key.enc``, mode 0600), so a copy of the data directory without
the KMS yields no key.  Leaf keys are generated in memory and never stored.

`verify_peer` implements the SPIFFE X.509-SVID rules (X509-SVID §4, §5, and
the validation of §5.2) on top of what the TLS stack already checked, so it
holds even where a TLS stack was configured loosely.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

from cryptography import x509

from bulkhead.crypto import (
    EXPORT_KEY_MATERIAL,
    BadCertificateSignature,
    CertKey,
    DecryptionFailed,
    Kms,
    cert_pem,
    check_issued_by,
    decrypt,
    encrypt,
    issue_ca_certificate,
    issue_leaf_certificate,
)
from bulkhead.errors import ConfigError, NotFound
from bulkhead.identity.spiffe import PeerRejected, SpiffeId

PLATFORM_KEY_OWNER = "_platform"
"""The KMS pseudo-tenant whose KEK seals platform secrets such as the CA key."""
DEFAULT_LIFETIME = timedelta(hours=1)
MAX_LIFETIME = timedelta(days=30)
CA_LIFETIME = timedelta(days=5 * 365)
# Tolerate this much clock difference between processes when checking validity.
_SKEW = timedelta(seconds=30)

Clock = Callable[[], datetime]
IdCheck = str | Callable[[SpiffeId], bool]
"""A path pattern (``tenant/*/worker/*``) or a predicate the peer's ID must satisfy."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Svid:
    """A workload's certificate and its in-memory private key."""

    spiffe_id: SpiffeId
    cert: x509.Certificate
    key: CertKey = field(repr=False)

    @property
    def not_before(self) -> datetime:
        return self.cert.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.cert.not_valid_after_utc

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)


class TrustAnchor:
    """The CA certificate of one trust domain, and the SVID checks against it.

    It holds no key: a worker gets one over its stdin to check the gateway's
    certificate, and `InternalCA` adds issuing on top.
    """

    def __init__(self, trust_domain: str, cert: x509.Certificate, *, clock: Clock = _utcnow):
        self.trust_domain = SpiffeId.parse(f"spiffe://{trust_domain}").trust_domain
        self.cert, self._clock = cert, clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(trust_domain={self.trust_domain!r})"

    @classmethod
    def from_pem(cls, pem: bytes, *, clock: Clock = _utcnow) -> TrustAnchor:
        """The anchor of a CA certificate whose one URI SAN names its trust domain."""
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise ConfigError("the CA certificate does not parse") from None
        sid = SpiffeId.parse(_only_uri(cert))
        if sid.path:
            raise ConfigError("the CA certificate names a workload, not a trust domain")
        return cls(sid.trust_domain, cert, clock=clock)

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    def verify_peer(
        self, chain: Sequence[x509.Certificate] | x509.Certificate, expected: IdCheck
    ) -> SpiffeId:
        """The peer's SPIFFE ID if its leaf is a valid SVID of ours that `expected` accepts.

        Raises `PeerRejected` (a 403 outside, with the reason kept inside) otherwise.
        """
        leaf = chain if isinstance(chain, x509.Certificate) else _first(chain)
        sid = SpiffeId.parse(_only_uri(leaf))
        if sid.trust_domain != self.trust_domain:
            raise PeerRejected("foreign trust domain")
        if not sid.path:
            raise PeerRejected("an SVID of a trust domain itself is not a workload")
        _check_leaf_profile(leaf)
        self._check_validity(leaf)
        self._check_issuer(leaf)
        accepted = sid.matches(expected) if isinstance(expected, str) else expected(sid)
        if not accepted:
            raise PeerRejected(f"unexpected peer ID {sid}")
        return sid

    def verify_tenant_client(self, cert: x509.Certificate | None, tenant_id: str) -> SpiffeId:
        """A client certificate of this CA issued for `tenant_id`, or `PeerRejected`.

        What a tenant with `require_client_cert` demands of every caller, whatever
        the door: its API, and signing in.
        """
        if cert is None:
            raise PeerRejected("no client certificate")

        def own_client(sid: SpiffeId) -> bool:
            return sid.tenant == tenant_id and len(sid.path) == 4 and sid.path[2] == "client"

        return self.verify_peer(cert, own_client)

    def _check_validity(self, leaf: x509.Certificate) -> None:
        now = self._clock()
        if now + _SKEW < leaf.not_valid_before_utc:
            raise PeerRejected("certificate not yet valid")
        if now >= leaf.not_valid_after_utc:
            raise PeerRejected("certificate expired")

    def _check_issuer(self, leaf: x509.Certificate) -> None:
        if leaf.issuer != self.cert.subject:
            raise PeerRejected("not issued by this CA")
        try:
            check_issued_by(leaf, self.cert)
        except BadCertificateSignature:
            raise PeerRejected("bad signature") from None


class InternalCA(TrustAnchor):
    """Issues and checks X.509-SVIDs of one trust domain."""

    def __init__(
        self, trust_domain: str, cert: x509.Certificate, key: CertKey, *, clock: Clock = _utcnow
    ):
        if not key.matches(cert):
            raise ConfigError("the CA key does not match the CA certificate")
        super().__init__(trust_domain, cert, clock=clock)
        self._key = key

    @classmethod
    def create(cls, trust_domain: str, *, clock: Clock = _utcnow) -> InternalCA:
        """A fresh CA in memory (tests, and the first step of `load_or_create`)."""
        key, now = CertKey.generate(), clock()
        cert = issue_ca_certificate(
            key,
            common_name=f"Bulkhead internal CA ({trust_domain})",
            uri=f"spiffe://{trust_domain}",
            not_before=now - _SKEW,
            not_after=now + CA_LIFETIME,
        )
        return cls(trust_domain, cert, key, clock=clock)

    @classmethod
    def load_or_create(
        cls, directory: Path, kms: Kms, trust_domain: str, *, clock: Clock = _utcnow
    ) -> InternalCA:
        """Open the CA in `directory`, creating it (and its sealed key) the first time."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_path, key_path = directory / "ca.pem", directory / "ca.key.enc"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            try:
                der = decrypt(key_path.read_bytes(), **_sealing(trust_domain, kms))
            except DecryptionFailed:
                raise ConfigError(f"the KMS does not open the CA key in {key_path}") from None
            return cls(trust_domain, cert, CertKey(der), clock=clock)
        ca = cls.create(trust_domain, clock=clock)
        _ensure_key_owner(kms)
        der = ca._key.reveal_der(EXPORT_KEY_MATERIAL)
        _write_new(key_path, encrypt(der, **_sealing(trust_domain, kms)), 0o600)
        _write_new(cert_path, ca.cert_pem, 0o644)
        return ca

    def issue(self, spiffe_id: SpiffeId | str, lifetime: timedelta = DEFAULT_LIFETIME) -> Svid:
        """A short-lived leaf for `spiffe_id`, with a key made in memory for it alone."""
        sid = spiffe_id if isinstance(spiffe_id, SpiffeId) else SpiffeId.parse(spiffe_id)
        if sid.trust_domain != self.trust_domain or not sid.path:
            raise ValueError("an SVID names a workload in this trust domain")
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise ValueError("an SVID lives between 0 and 30 days")
        now, key = self._clock(), CertKey.generate()
        not_after = min(now + lifetime, self.cert.not_valid_after_utc)
        cert = issue_leaf_certificate(
            key,
            uri=str(sid),
            issuer_key=self._key,
            issuer=self.cert,
            # Backdated by a second only: the rotation test leans on short lifetimes.
            not_before=now - timedelta(seconds=1),
            not_after=not_after,
        )
        return Svid(sid, cert, key)


def _first(chain: Sequence[x509.Certificate]) -> x509.Certificate:
    if not chain:
        raise PeerRejected("no certificate")
    return chain[0]


def _only_uri(leaf: x509.Certificate) -> str:
    """X509-SVID §2: exactly one URI SAN, the SPIFFE ID."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise PeerRejected("no subject alternative name") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise PeerRejected(f"{len(uris)} URI SANs (an SVID has exactly one)")
    return uris[0]


def _check_leaf_profile(leaf: x509.Certificate) -> None:
    """X509-SVID §4.1 and §4.3: a leaf is not a CA, and signs only."""
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise PeerRejected("missing basicConstraints or keyUsage") from None
    if constraints.ca:
        raise PeerRejected("a CA certificate used as a leaf")
    if not usage.digital_signature or usage.key_cert_sign or usage.crl_sign:
        raise PeerRejected("leaf key usage is not digitalSignature only")


class _Sealing(TypedDict):
    tenant_id: str
    kind: str
    object_id: str
    kms: Kms


def _sealing(trust_domain: str, kms: Kms) -> _Sealing:
    """Associated data binds the sealed key to the platform owner, its kind and trust domain."""
    return _Sealing(tenant_id=PLATFORM_KEY_OWNER, kind="ca-key", object_id=trust_domain, kms=kms)


def _ensure_key_owner(kms: Kms) -> None:
    try:
        kms.status(PLATFORM_KEY_OWNER)
    except NotFound:
        kms.create_tenant(PLATFORM_KEY_OWNER)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write through a private temporary file and rename, so no reader sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
