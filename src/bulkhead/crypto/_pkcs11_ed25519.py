"""Ed25519 signing keys inside a PKCS#11 token (PKCS#11 3.0 ``CKM_EC_EDWARDS_KEY_PAIR_GEN``,
``CKM_EDDSA``), for the audit log's checkpoint-signing key.

The private key is generated in the token as a token object with
``CKA_SENSITIVE=True``, ``CKA_EXTRACTABLE=False``, ``CKA_PRIVATE=True``,
allowed only to sign; its public half is a token object beside it, and both
carry ``CKA_ID = ID`` and the caller's label, so every such key can be found
and destroyed.  Signing is pure Ed25519 (RFC 8032 §5.1, no context), done in
the token; the signature is checked against the public key before it is
returned, so a token that misbehaves cannot put a bad signature on the record.

The caller (`Pkcs11Kms`) holds its lock around every function here.
"""

from __future__ import annotations

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.types import SignMixin
from pkcs11.util.ec import encode_named_curve_parameters

from bulkhead.crypto.hazmat import ed25519_valid
from bulkhead.errors import ConfigError, NotFound

ID = b"bulkhead-ed25519"
ED25519_OID = "1.3.101.112"  # RFC 8410 §3, id-Ed25519
_PUBLIC_KEY_SIZE = 32


def supported(session: pkcs11.Session) -> bool:
    """Whether the token generates Ed25519 key pairs and signs with them."""
    try:
        mechanisms = session.token.slot.get_mechanisms()
    except pkcs11.PKCS11Error:
        return False
    return {Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA} <= set(mechanisms)


def create(session: pkcs11.Session, label: str) -> bytes:
    """Generate a key pair labelled `label` in the token; return its raw public key."""
    destroy(session, label)  # an orphan of an interrupted create under the same label
    public, _private = session.generate_keypair(
        KeyType.EC_EDWARDS,
        0,
        mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
        id=ID,
        label=label,
        store=True,
        public_template={
            Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID),
            Attribute.VERIFY: True,
            Attribute.PRIVATE: False,
        },
        private_template={
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.PRIVATE: True,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.DERIVE: False,
            Attribute.UNWRAP: False,
        },
    )
    return _raw_point(bytes(public[Attribute.EC_POINT]))


def sign(session: pkcs11.Session, label: str, public_key: bytes, message: bytes) -> bytes:
    """The Ed25519 signature of `message` by the private key labelled `label`."""
    keys = _objects(session, label, ObjectClass.PRIVATE_KEY)
    if len(keys) != 1 or not isinstance(keys[0], SignMixin):
        raise NotFound("The signing key is missing from the PKCS#11 token.")
    signature = keys[0].sign(message, mechanism=Mechanism.EDDSA)
    if not isinstance(signature, bytes):
        raise TypeError("a one-shot PKCS#11 sign returns bytes")
    if not ed25519_valid(public_key, signature, message):
        raise ConfigError("The PKCS#11 token returned a signature that does not verify.")
    return signature


def destroy(session: pkcs11.Session, label: str) -> None:
    """Destroy both halves of the key pair labelled `label` (nothing if there is none)."""
    for kind in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        for obj in _objects(session, label, kind):
            obj.destroy()


def labels(session: pkcs11.Session) -> set[str]:
    """The labels of every Ed25519 private key this module made in the token."""
    query = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: ID}
    return {str(obj[Attribute.LABEL]) for obj in session.get_objects(query)}


def _objects(session: pkcs11.Session, label: str, kind: ObjectClass) -> list[pkcs11.Object]:
    query = {Attribute.CLASS: kind, Attribute.ID: ID, Attribute.LABEL: label}
    return list(session.get_objects(query))


def _raw_point(point: bytes) -> bytes:
    """CKA_EC_POINT of an Edwards key: the DER OCTET STRING of the 32-byte key, or the bare key."""
    if len(point) == _PUBLIC_KEY_SIZE + 2 and point[:2] == bytes((0x04, _PUBLIC_KEY_SIZE)):
        return point[2:]
    if len(point) == _PUBLIC_KEY_SIZE:
        return point
    raise ConfigError("The PKCS#11 token returned an Ed25519 public key of an unknown form.")
