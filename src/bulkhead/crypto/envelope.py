"""Envelope encryption of one object: a fresh DEK per object, wrapped by the tenant's KEK.

Format ``BHE1`` version 1 (all integers big-endian; pinned by
``tests/vectors/envelope/``)::

    magic            4   b"BHE1"
    format version   1   0x01
    KEK id           2+n tenant id, UTF-8, uint16 length prefix
    KEK version      4   uint32
    wrapped DEK      2+m uint16 length prefix; opaque to this module (the KMS's format)
    nonce           12   random (NIST SP 800-38D §8.2.2, RBG-based construction)
    ciphertext       *   AES-256-GCM(DEK, nonce, plaintext, AD) with its 16-byte tag last

The body's associated data is ``magic ‖ version ‖ context`` where context is
the length-prefixed label, tenant id, object kind and object id (STYLE rule
10), so a ciphertext moved to another tenant or object fails to open.  The
KMS wraps the DEK with the same context under another label, so a wrapped DEK
moved to another tenant or object fails too.  The KEK version and wrapped DEK
are deliberately outside the body's associated data: they are authenticated
by the wrap itself, and leaving them out lets `rewrap` move an object to a new
KEK version by rewriting the header alone (the rotation of tink's
`KmsEnvelopeAead` and cryptography's `MultiFernet.rotate`, without re-encrypting).

The format has no timestamp, so `encrypt` takes no clock; it takes `rng` so
tests can pin the DEK and nonce (STYLE rule 12).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bulkhead.crypto._errors import DecryptionFailed
from bulkhead.crypto._keys import DataKey, Rng, aead_of
from bulkhead.crypto._wire import Reader, context, field, u32
from bulkhead.crypto.hazmat import GCM_NONCE_SIZE
from bulkhead.crypto.kms import Kms

MAGIC = b"BHE1"
VERSION = 1
_PREFIX = MAGIC + bytes([VERSION])


@dataclass(frozen=True, slots=True)
class _Header:
    tenant_id: str
    kek_version: int
    wrapped_dek: bytes

    def encode(self) -> bytes:
        return (
            _PREFIX
            + field(self.tenant_id.encode())
            + u32(self.kek_version)
            + field(self.wrapped_dek)
        )


def encrypt(
    plaintext: bytes, *, tenant_id: str, kind: str, object_id: str, kms: Kms, rng: Rng | None = None
) -> bytes:
    """Encrypt one object for `tenant_id` under a fresh DEK wrapped by the tenant's KEK."""
    dek = DataKey.generate(rng)
    version, wrapped = kms.wrap_dek(tenant_id, dek, _wrap_aad(tenant_id, kind, object_id))
    nonce = (rng or os.urandom)(GCM_NONCE_SIZE)
    body = aead_of(dek).seal(nonce, plaintext, _body_aad(tenant_id, kind, object_id))
    return _Header(tenant_id, version, wrapped).encode() + nonce + body


def decrypt(ciphertext: bytes, *, tenant_id: str, kind: str, object_id: str, kms: Kms) -> bytes:
    """Open a ciphertext of `encrypt`; any failure raises `DecryptionFailed`."""
    header, body = _parse(ciphertext, tenant_id)
    dek = kms.unwrap_dek(
        tenant_id, header.kek_version, header.wrapped_dek, _wrap_aad(tenant_id, kind, object_id)
    )
    nonce, sealed = body[:GCM_NONCE_SIZE], body[GCM_NONCE_SIZE:]
    return aead_of(dek).open(nonce, sealed, _body_aad(tenant_id, kind, object_id))


def rewrap(ciphertext: bytes, *, tenant_id: str, kind: str, object_id: str, kms: Kms) -> bytes:
    """Re-wrap the DEK under the tenant's primary KEK version; the body is copied unchanged."""
    header, body = _parse(ciphertext, tenant_id)
    aad = _wrap_aad(tenant_id, kind, object_id)
    version, wrapped = kms.rewrap(tenant_id, header.kek_version, header.wrapped_dek, aad)
    return _Header(tenant_id, version, wrapped).encode() + body


def _parse(ciphertext: bytes, tenant_id: str) -> tuple[_Header, bytes]:
    reader = Reader(ciphertext)
    if reader.take(len(_PREFIX)) != _PREFIX or reader.field() != tenant_id.encode():
        raise DecryptionFailed()
    header = _Header(tenant_id, reader.u32(), reader.field())
    return header, reader.rest()


def _body_aad(tenant_id: str, kind: str, object_id: str) -> bytes:
    return _PREFIX + context(b"bulkhead/envelope/body", tenant_id, kind, object_id)


def _wrap_aad(tenant_id: str, kind: str, object_id: str) -> bytes:
    return _PREFIX + context(b"bulkhead/envelope/dek", tenant_id, kind, object_id)
