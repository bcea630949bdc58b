"""The internal CA: issuing X.509-SVIDs, and every way a peer's certificate is refused."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bulkhead.crypto.certs import CertKey
from bulkhead.errors import ConfigError
from bulkhead.identity.ca import Authority, InternalCA, TrustAnchor, new_authority
from bulkhead.identity.spiffe import PeerRejected, SpiffeId
from bulkhead.identity.tls import RotatingIdentity, mtls_context

TD = "bulkhead.test"
WORKER = f"spiffe://{TD}/tenant/acme/worker/dep1"


@pytest.fixture(scope="module")
def ca() -> InternalCA:
    return InternalCA.create(TD)


def _forge(
    ca_or_key: InternalCA | ec.EllipticCurvePrivateKey,
    uris: list[str],
    *,
    is_ca: bool = False,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    issuer: x509.Name | None = None,
) -> x509.Certificate:
    """A certificate the product recipes would never make, signed by the CA's own key."""
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    signer = ca_or_key._key._CertKey__key if isinstance(ca_or_key, InternalCA) else ca_or_key  # type: ignore[attr-defined]
    name = issuer or (
        ca_or_key.cert.subject if isinstance(ca_or_key, InternalCA) else x509.Name([])
    )
    usage = x509.KeyUsage(True, False, False, False, False, is_ca, is_ca, False, False)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "forged")]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=1))
        .not_valid_after(not_after or now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=True,
        )
    )
    return builder.sign(signer, hashes.SHA256())


def test_issued_svid_is_accepted(ca: InternalCA) -> None:
    svid = ca.issue(WORKER)
    assert ca.verify_peer(svid.cert, "tenant/acme/worker/*") == SpiffeId.parse(WORKER)
    assert svid.not_after - svid.not_before <= timedelta(hours=1, seconds=1)
    constraints = svid.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is False


def test_forged_but_well_formed_cert_signed_by_the_ca_is_accepted(ca: InternalCA) -> None:
    # The forge helper is honest: with a good profile, its certificate passes.
    assert ca.verify_peer(_forge(ca, [WORKER]), "tenant/acme/worker/dep1").tenant == "acme"


def test_two_uri_sans_rejected(ca: InternalCA) -> None:
    cert = _forge(ca, [WORKER, f"spiffe://{TD}/gateway"])
    with pytest.raises(PeerRejected, match="not accepted") as info:
        ca.verify_peer(cert, lambda _: True)
    assert "2 URI SANs" in info.value.reason


def test_ca_certificate_as_leaf_rejected(ca: InternalCA) -> None:
    with pytest.raises(PeerRejected) as info:
        ca.verify_peer(_forge(ca, [WORKER], is_ca=True), lambda _: True)
    assert "CA certificate" in info.value.reason


def test_the_ca_itself_rejected_as_leaf(ca: InternalCA) -> None:
    with pytest.raises(PeerRejected):
        ca.verify_peer(ca.cert, lambda _: True)


def test_foreign_trust_domain_rejected(ca: InternalCA) -> None:
    with pytest.raises(PeerRejected) as info:
        ca.verify_peer(_forge(ca, ["spiffe://evil.example/tenant/acme/worker/dep1"]), "*")
    assert info.value.reason == "foreign trust domain"


def test_another_ca_with_the_same_trust_domain_rejected(ca: InternalCA) -> None:
    other = InternalCA.create(TD)
    with pytest.raises(PeerRejected) as info:
        ca.verify_peer(other.issue(WORKER).cert, lambda _: True)
    assert info.value.reason in ("not issued by this CA", "bad signature")
    # Same subject name, other key: the signature check catches it.
    forged = _forge(ec.generate_private_key(ec.SECP256R1()), [WORKER], issuer=ca.cert.subject)
    with pytest.raises(PeerRejected) as info:
        ca.verify_peer(forged, lambda _: True)
    assert info.value.reason == "bad signature"


def test_expired_rejected(ca: InternalCA) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    cert = _forge(ca, [WORKER], not_before=past, not_after=past + timedelta(hours=1))
    with pytest.raises(PeerRejected) as info:
        ca.verify_peer(cert, lambda _: True)
    assert info.value.reason == "certificate expired"


def test_not_yet_valid_rejected(ca: InternalCA) -> None:
    future = datetime.now(UTC) + timedelta(hours=2)
    cert = _forge(ca, [WORKER], not_before=future, not_after=future + timedelta(hours=1))
    with pytest.raises(PeerRejected):
        ca.verify_peer(cert, lambda _: True)


def test_wrong_id_for_the_service_rejected(ca: InternalCA) -> None:
    svid = ca.issue(f"spiffe://{TD}/tenant/other/worker/dep1")
    with pytest.raises(PeerRejected) as info:
        ca.verify_peer(svid.cert, "tenant/acme/worker/dep1")
    assert "unexpected peer ID" in info.value.reason
    with pytest.raises(PeerRejected):
        ca.verify_peer(ca.issue(f"spiffe://{TD}/gateway").cert, "tenant/*/worker/*")


@pytest.mark.parametrize(
    "uri",
    [
        "https://bulkhead.test/gateway",
        "spiffe://BULKHEAD.test/gateway",
        "spiffe://bulkhead.test/a/../b",
        "spiffe://bulkhead.test/a//b",
        "spiffe://bulkhead.test/a?x=1",
        "spiffe://user@bulkhead.test/a",
    ],
)
def test_malformed_spiffe_ids_rejected(uri: str) -> None:
    with pytest.raises(PeerRejected):
        SpiffeId.parse(uri)


def test_issue_refuses_foreign_domain_and_bad_lifetime(ca: InternalCA) -> None:
    with pytest.raises(ValueError):
        ca.issue("spiffe://other.test/gateway")
    with pytest.raises(ValueError):
        ca.issue(f"spiffe://{TD}/gateway", timedelta(days=31))


def test_a_bundle_trusts_every_version_and_the_newest_active_one_issues() -> None:
    now = [datetime.now(UTC)]
    old = InternalCA.create(TD, clock=lambda: now[0])
    cert, key = new_authority(TD, now[0], 2)
    assert cert.subject != old.cert.subject  # a TLS stack tells the two apart by name
    first = old.issue(WORKER)
    old.install(
        (Authority(old.cert, old._key), Authority(cert, key, now[0] + timedelta(seconds=5))),
        (old.cert, cert),
    )
    before = old.fingerprint()
    assert old.issue(WORKER).cert.issuer == first.cert.issuer  # not active yet
    now[0] += timedelta(seconds=6)
    assert old.fingerprint() != before  # the issuing version changed
    second = old.issue(WORKER)
    assert second.cert.issuer == cert.subject
    for svid in (first, second):
        assert old.verify_peer(svid.cert, "tenant/acme/worker/dep1")
    anchor = TrustAnchor.from_pem(old.cert_pem)  # what a worker gets over its stdin
    assert len(anchor.certs) == 2
    assert anchor.verify_peer(first.cert, "tenant/acme/worker/dep1")
    assert anchor.verify_peer(second.cert, "tenant/acme/worker/dep1")
    # Once the old version leaves the bundle, what it issued is refused.
    old.install((Authority(cert, key),), (cert,))
    with pytest.raises(PeerRejected):
        old.verify_peer(first.cert, "tenant/acme/worker/dep1")


def test_a_bundle_of_two_trust_domains_is_refused() -> None:
    other = InternalCA.create("other.test")
    with pytest.raises(ConfigError):
        TrustAnchor.from_pem(InternalCA.create(TD).cert_pem + other.cert_pem)


def test_rotating_identity_reissues_when_the_ca_changes() -> None:
    now = [datetime.now(UTC)]
    ca = InternalCA.create(TD, clock=lambda: now[0])
    identity = RotatingIdentity(ca, WORKER, server=False, lifetime=timedelta(hours=1))
    first = identity.context()
    assert identity.context() is first
    cert, key = new_authority(TD, now[0], 2)
    ca.install((Authority(ca.cert, ca._key), Authority(cert, key, now[0])), (ca.cert, cert))
    assert identity.context() is not first and identity.rotations == 1
    assert identity.svid.cert.issuer == cert.subject


def test_cert_key_refuses_repr_and_pickling() -> None:
    import pickle

    key = CertKey.generate()
    assert "PRIVATE" not in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(PermissionError):
        key.reveal_pem(object())  # type: ignore[arg-type]


def test_mtls_context_is_tls13_and_requires_a_peer(ca: InternalCA) -> None:
    ctx = mtls_context(ca, ca.issue(WORKER), server=True)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode is ssl.CERT_REQUIRED


def test_rotating_identity_rotates_at_half_life(ca: InternalCA) -> None:
    now = [datetime.now(UTC)]
    clocked = InternalCA(TD, ca.cert, ca._key, clock=lambda: now[0])
    identity = RotatingIdentity(clocked, WORKER, server=False, lifetime=timedelta(seconds=10))
    first = identity.context()
    now[0] += timedelta(seconds=4)
    assert identity.context() is first and identity.rotations == 0
    now[0] += timedelta(seconds=2)
    assert identity.context() is not first and identity.rotations == 1
