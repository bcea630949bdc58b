"""The internal CA: short-lived X.509-SVIDs for workloads, and the checks on a peer's.

The CA's versions live in the database every replica shares
(`store.ca_keys`): each certificate in the clear, each private key sealed
under the KEK of the platform pseudo-tenant ``_platform`` in the KMS, so a
copy of the database without the KMS yields no key, and rotating that KEK
re-wraps it.  Leaf keys are generated in memory and never stored.

The CA rotates: a new version is trusted at once and issues only from its
activation on, and the old one stays in the trust bundle until every leaf
it issued has expired, so no handshake fails on the way (`InternalCA`).

`verify_peer` implements the SPIFFE X.509-SVID rules (X509-SVID §4, §5, and
the validation of §5.2) on top of what the TLS stack already checked, so it
holds even where a TLS stack was configured loosely.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509

from bulkhead.crypto import (
    BadCertificateSignature,
    CertKey,
    cert_pem,
    check_issued_by,
    issue_ca_certificate,
    issue_leaf_certificate,
)
from bulkhead.errors import ConfigError
from bulkhead.identity.spiffe import PeerRejected, SpiffeId

PLATFORM_KEY_OWNER = "_platform"
"""The KMS pseudo-tenant whose KEK seals platform secrets such as the CA key."""
DEFAULT_LIFETIME = timedelta(hours=1)
MAX_LIFETIME = timedelta(days=30)
CA_LIFETIME = timedelta(days=5 * 365)
# Tolerate this much clock difference between processes when checking validity.
SKEW = timedelta(seconds=30)

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


@dataclass(frozen=True, slots=True)
class Authority:
    """One version of the CA: its certificate, and its key while it may still issue.

    `activates_at` is when it starts issuing (None: at once); until then it is
    only trusted, so every peer holds it before anything presents a leaf of it.
    """

    cert: x509.Certificate
    key: CertKey | None = field(default=None, repr=False)
    activates_at: datetime | None = None


class TrustAnchor:
    """The CA certificates of one trust domain (its trust bundle), and the SVID checks against them.

    It holds no key: a worker gets the bundle over its stdin to check the
    gateway's certificate, and `InternalCA` adds issuing on top.  While the CA
    rotates the bundle holds the old certificate and the new one, so a leaf of
    either is accepted (`identity.tls` loads the whole bundle into OpenSSL).
    """

    def __init__(
        self,
        trust_domain: str,
        certs: x509.Certificate | Sequence[x509.Certificate],
        *,
        clock: Clock = _utcnow,
    ):
        self.trust_domain = SpiffeId.parse(f"spiffe://{trust_domain}").trust_domain
        self._bundle = (certs,) if isinstance(certs, x509.Certificate) else tuple(certs)
        if not self._bundle:
            raise ConfigError("a trust bundle holds at least one CA certificate")
        self._clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(trust_domain={self.trust_domain!r})"

    @classmethod
    def from_pem(cls, pem: bytes, *, clock: Clock = _utcnow) -> TrustAnchor:
        """The anchor of a bundle of CA certificates, each naming the trust domain (URI SAN)."""
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError:
            raise ConfigError("the CA certificate does not parse") from None
        domains = set()
        for cert in certs:
            sid = SpiffeId.parse(_only_uri(cert))
            if sid.path:
                raise ConfigError("the CA certificate names a workload, not a trust domain")
            domains.add(sid.trust_domain)
        if len(domains) != 1:
            raise ConfigError("a trust bundle names one trust domain")
        return cls(domains.pop(), certs, clock=clock)

    @property
    def certs(self) -> tuple[x509.Certificate, ...]:
        """Every CA certificate trusted now, oldest first."""
        return self._bundle

    @property
    def cert(self) -> x509.Certificate:
        return self._bundle[-1]

    @property
    def cert_pem(self) -> bytes:
        """The trust bundle in PEM: what peers and TLS stacks must trust."""
        return b"".join(cert_pem(cert) for cert in self.certs)

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
        if now + SKEW < leaf.not_valid_before_utc:
            raise PeerRejected("certificate not yet valid")
        if now >= leaf.not_valid_after_utc:
            raise PeerRejected("certificate expired")

    def _check_issuer(self, leaf: x509.Certificate) -> None:
        named = [ca for ca in self.certs if leaf.issuer == ca.subject]
        if not named:
            raise PeerRejected("not issued by this CA")
        for ca in named:
            try:
                check_issued_by(leaf, ca)
            except BadCertificateSignature:
                continue
            return
        raise PeerRejected("bad signature")


class InternalCA(TrustAnchor):
    """Issues and checks X.509-SVIDs of one trust domain; rotates without a failed handshake.

    It holds every version of the CA that is still trusted (`Authority`) and
    issues with the newest active one.  `install` swaps them all at once (the
    CA's store, `store.ca_keys`, calls it when a rotation is stored or seen);
    `fingerprint` changes whenever the bundle or the issuing version does, so
    `identity.tls.RotatingIdentity` and the worker supervisor re-issue then.
    """

    def __init__(
        self, trust_domain: str, cert: x509.Certificate, key: CertKey, *, clock: Clock = _utcnow
    ):
        super().__init__(trust_domain, cert, clock=clock)
        self._revision = 0
        self._authorities: tuple[Authority, ...] = ()
        self.install((Authority(cert, key),), (cert,))

    @classmethod
    def create(cls, trust_domain: str, *, clock: Clock = _utcnow) -> InternalCA:
        """A fresh CA in memory (tests; the gateway's is kept in the database)."""
        return cls(trust_domain, *new_authority(trust_domain, clock()), clock=clock)

    def install(self, authorities: Sequence[Authority], bundle: Sequence[x509.Certificate]) -> None:
        """Hold these versions and trust `bundle` from now on (one atomic swap)."""
        for authority in authorities:
            if authority.key is not None and not authority.key.matches(authority.cert):
                raise ConfigError("the CA key does not match the CA certificate")
        if not any(a.key is not None for a in authorities):
            raise ConfigError("no version of the CA can issue")
        state = (tuple(authorities), tuple(bundle))
        if state == (self._authorities, self._bundle):
            return
        self._authorities, self._bundle = state
        self._revision += 1

    def _issuer(self) -> Authority:
        """The newest version whose key issues now (the oldest with a key before any activates)."""
        now, authorities = self._clock(), self._authorities
        issuing = [a for a in authorities if a.key is not None]
        active = [a for a in issuing if a.activates_at is None or a.activates_at <= now]
        return active[-1] if active else issuing[0]

    @property
    def cert(self) -> x509.Certificate:
        """The certificate of the version that issues now."""
        return self._issuer().cert

    @property
    def _key(self) -> CertKey:
        key = self._issuer().key
        assert key is not None
        return key

    def fingerprint(self) -> tuple[int, int]:
        """Changes whenever the trust bundle or the issuing version changes."""
        return self._revision, self._issuer().cert.serial_number

    def issue(self, spiffe_id: SpiffeId | str, lifetime: timedelta = DEFAULT_LIFETIME) -> Svid:
        """A short-lived leaf for `spiffe_id`, with a key made in memory for it alone."""
        sid = spiffe_id if isinstance(spiffe_id, SpiffeId) else SpiffeId.parse(spiffe_id)
        if sid.trust_domain != self.trust_domain or not sid.path:
            raise ValueError("an SVID names a workload in this trust domain")
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise ValueError("an SVID lives between 0 and 30 days")
        issuer, now, key = self._issuer(), self._clock(), CertKey.generate()
        assert issuer.key is not None
        not_after = min(now + lifetime, issuer.cert.not_valid_after_utc)
        cert = issue_leaf_certificate(
            key,
            uri=str(sid),
            issuer_key=issuer.key,
            issuer=issuer.cert,
            # Backdated by a second only: the rotation test leans on short lifetimes.
            not_before=now - timedelta(seconds=1),
            not_after=not_after,
        )
        return Svid(sid, cert, key)


def new_authority(
    trust_domain: str, now: datetime, version: int = 1
) -> tuple[x509.Certificate, CertKey]:
    """A new CA certificate and key; versions after the first name themselves apart.

    Distinct subjects let a TLS stack holding the old certificate and the new
    one pick a leaf's issuer by name.
    """
    key = CertKey.generate()
    suffix = f" v{version}" if version > 1 else ""
    cert = issue_ca_certificate(
        key,
        common_name=f"Bulkhead internal CA ({trust_domain}){suffix}",
        uri=f"spiffe://{trust_domain}",
        not_before=now - SKEW,
        not_after=now + CA_LIFETIME,
    )
    return cert, key


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
