"""X.509 primitives with fixed algorithms: ECDSA P-256 keys, SHA-256 signatures.

P-256 is the curve every TLS stack Bulkhead meets (OpenSSL through Python's
`ssl`, aiohttp, uvicorn, Go and Rust clients) supports for certificates;
Ed25519 certificates are still refused by some of them.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class SignatureMismatch(Exception):
    """A certificate's signature does not verify under the issuer's public key."""


def generate_p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sign_certificate(
    builder: x509.CertificateBuilder,
    subject_key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    """Sign `builder` (with the subject's public key set here) by the issuer, ECDSA-SHA256."""
    return builder.public_key(subject_key.public_key()).sign(issuer_key, hashes.SHA256())


def verify_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """Raise `SignatureMismatch` unless `issuer`'s key signed `cert` (RFC 5280 §6.1.3 (a)(1))."""
    public = issuer.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise SignatureMismatch()
    algorithm = cert.signature_hash_algorithm
    if not isinstance(algorithm, hashes.SHA256):
        raise SignatureMismatch()
    try:
        public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureMismatch() from None


def private_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS#8 DER, for the caller to seal at once."""
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_der(data: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_der_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 private key")
    return key


def public_key_matches(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def jwt_key_fits(alg: str, key: object) -> bool:
    """Whether `key` is a public key of the kind `alg` needs (RSA >= 2048 bits, or P-256)."""
    if alg == "RS256":
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    return False
