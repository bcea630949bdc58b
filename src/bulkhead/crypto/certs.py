"""X.509 recipes for the internal CA: P-256 keys and certificates with fixed profiles.

Two profiles only, so no caller can mint anything else by accident:

* a CA certificate: basicConstraints CA=true, pathLen=0 (it signs leaves,
  never another CA), keyUsage keyCertSign + cRLSign, both critical;
* a leaf (an X.509-SVID): basicConstraints CA=false, keyUsage
  digitalSignature, extendedKeyUsage serverAuth + clientAuth, and exactly
  one URI SAN (SPIFFE X.509-SVID §4 and §5).

Private keys are `CertKey` objects, which refuse `repr`, pickling and copying
and hand out their bytes only with `EXPORT_KEY_MATERIAL` (STYLE rule 11).
Clock values come from the caller (STYLE rule 12).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import NoReturn, Self, SupportsIndex, final

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bulkhead.crypto import hazmat as _hazmat
from bulkhead.crypto._keys import EXPORT_KEY_MATERIAL, KeyMaterialCapability
from bulkhead.crypto.hazmat import (
    SignatureMismatch,
    certificate_pem,
    generate_p256,
    load_private_der,
    private_der,
    private_pem,
    public_key_matches,
    sign_certificate,
    verify_issued_by,
)

_SERVER, _CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


class BadCertificateSignature(Exception):
    """The certificate was not signed by the given issuer."""


@final
class CertKey:
    """An ECDSA P-256 private key; see the module docstring for what it refuses."""

    __slots__ = ("__key", "key_id")

    def __init__(self, der: bytes) -> None:
        self.__key = load_private_der(der)
        self.key_id = hashlib.sha256(b"bulkhead cert key\x00" + der).hexdigest()[:16]

    @classmethod
    def generate(cls) -> Self:
        return cls(private_der(generate_p256()))

    def reveal_der(self, capability: KeyMaterialCapability) -> bytes:
        """PKCS#8 DER, for sealing with the KMS at once."""
        _check(capability)
        return private_der(self.__key)

    def reveal_pem(self, capability: KeyMaterialCapability) -> bytes:
        """PKCS#8 PEM, for a TLS stack that reads keys only in that form."""
        _check(capability)
        return private_pem(self.__key)

    def subject_key_identifier(self) -> x509.SubjectKeyIdentifier:
        return x509.SubjectKeyIdentifier.from_public_key(self.__key.public_key())

    def matches(self, cert: x509.Certificate) -> bool:
        return public_key_matches(cert, self.__key)

    def _sign(self, builder: x509.CertificateBuilder, subject: CertKey) -> x509.Certificate:
        return sign_certificate(builder, subject.__key, self.__key)

    def __repr__(self) -> str:
        return f"CertKey(key_id={self.key_id!r})"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("CertKey cannot be pickled")

    def __copy__(self) -> NoReturn:
        raise TypeError("CertKey cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("CertKey cannot be copied")


def _check(capability: KeyMaterialCapability) -> None:
    if capability is not EXPORT_KEY_MATERIAL:
        raise PermissionError("revealing key material needs EXPORT_KEY_MATERIAL")


def issue_ca_certificate(
    key: CertKey, *, common_name: str, uri: str, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    """A self-signed CA certificate that may sign leaves only (pathLen 0)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _base(name, name, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), False)
        .add_extension(key.subject_key_identifier(), critical=False)
    )
    return key._sign(builder, key)


def issue_leaf_certificate(
    subject: CertKey,
    *,
    uri: str,
    issuer_key: CertKey,
    issuer: x509.Certificate,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """An X.509-SVID for `uri`, signed by the CA."""
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bulkhead workload")])
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _base(name, issuer.subject, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([_SERVER, _CLIENT]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), False
        )
    )
    return issuer_key._sign(builder, subject)


def cert_pem(cert: x509.Certificate) -> bytes:
    """The certificate in PEM, as TLS stacks and files want it."""
    return certificate_pem(cert)


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """Raise `BadCertificateSignature` unless `issuer` signed `cert`."""
    try:
        verify_issued_by(cert, issuer)
    except SignatureMismatch:
        raise BadCertificateSignature() from None


def _base(
    subject: x509.Name, issuer: x509.Name, not_before: datetime, not_after: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def jwt_key_fits(alg: str, key: object) -> bool:
    """Whether a JWKS key fits `alg`: RSA of 2048+ bits for RS256, P-256 for ES256."""
    return _hazmat.jwt_key_fits(alg, key)
