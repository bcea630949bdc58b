"""Tenant data encryption: safe recipes with algorithms and nonces fixed.

Envelope encryption for objects, streaming AEAD for large ones, and the KMS
that holds each tenant's key-encryption keys.  Raw primitives live in
`bulkhead.crypto.hazmat`, which nothing outside this package may import.
"""

from bulkhead.crypto._errors import DecryptionFailed
from bulkhead.crypto._keys import EXPORT_KEY_MATERIAL, DataKey, Kek
from bulkhead.crypto.certs import (
    BadCertificateSignature,
    CertKey,
    cert_pem,
    check_issued_by,
    issue_ca_certificate,
    issue_leaf_certificate,
)
from bulkhead.crypto.envelope import decrypt, encrypt, rewrap
from bulkhead.crypto.kms import Ed25519Keys, KekVersionStatus, Kms, TenantKeyStatus
from bulkhead.crypto.kms_local import (
    FileKekStore,
    LocalKms,
    MemoryKekStore,
    load_or_create_master_key,
    master_key_from_base64,
)
from bulkhead.crypto.streaming import (
    decrypt_stream,
    decrypt_stream_bytes,
    decrypt_stream_into,
    encrypt_stream,
    encrypt_stream_bytes,
    rewrap_stream,
)

__all__ = [
    "EXPORT_KEY_MATERIAL",
    "BadCertificateSignature",
    "CertKey",
    "DataKey",
    "DecryptionFailed",
    "Ed25519Keys",
    "FileKekStore",
    "Kek",
    "KekVersionStatus",
    "Kms",
    "LocalKms",
    "MemoryKekStore",
    "TenantKeyStatus",
    "cert_pem",
    "check_issued_by",
    "decrypt",
    "decrypt_stream",
    "decrypt_stream_bytes",
    "decrypt_stream_into",
    "encrypt",
    "encrypt_stream",
    "encrypt_stream_bytes",
    "issue_ca_certificate",
    "issue_leaf_certificate",
    "load_or_create_master_key",
    "master_key_from_base64",
    "rewrap",
    "rewrap_stream",
]
