"""AES-256-GCM, HKDF-SHA256 and Ed25519 verification, thin wrappers with every parameter fixed."""

from __future__ import annotations

from typing import NoReturn, SupportsIndex

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bulkhead.crypto._errors import DecryptionFailed

AES_KEY_SIZE = 32
"""AES-256 only: a 32-byte key."""

GCM_NONCE_SIZE = 12
"""NIST SP 800-38D §5.2.1.1 recommends 96-bit IVs; no other length is accepted."""

GCM_TAG_SIZE = 16
"""The full 128-bit tag (NIST SP 800-38D §5.2.1.2); truncated tags are not used."""

Buffer = bytes | bytearray | memoryview


class AesGcm:
    """AES-256-GCM with a 96-bit nonce and a 128-bit tag (NIST SP 800-38D)."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != AES_KEY_SIZE:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "AesGcm(<key hidden>)"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("cipher objects hold key material and cannot be pickled")

    def seal(self, nonce: bytes, plaintext: Buffer, aad: bytes) -> bytes:
        """Return ciphertext ‖ tag; the caller guarantees the nonce is never reused."""
        _check_nonce(nonce)
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: Buffer, aad: bytes) -> bytes:
        """Return the plaintext, or raise `DecryptionFailed` for any bad input."""
        if len(nonce) != GCM_NONCE_SIZE or len(ciphertext) < GCM_TAG_SIZE:
            raise DecryptionFailed()
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionFailed() from None

    def open_into(self, nonce: bytes, ciphertext: Buffer, aad: bytes, out: memoryview) -> None:
        """Decrypt into `out` (exactly len(ciphertext) - tag bytes), or raise `DecryptionFailed`.

        On failure `out` is zeroed, so no unauthenticated plaintext is left in it.
        """
        if len(nonce) != GCM_NONCE_SIZE or len(ciphertext) - GCM_TAG_SIZE != len(out):
            raise DecryptionFailed()
        try:
            self._aead.decrypt_into(nonce, ciphertext, aad, out)
        except InvalidTag:
            out[:] = bytes(len(out))
            raise DecryptionFailed() from None


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int = AES_KEY_SIZE) -> bytes:
    """HKDF-Extract then HKDF-Expand with SHA-256 (RFC 5869 §2.2 and §2.3)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def ed25519_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is `public_key`'s Ed25519 signature of `message` (RFC 8032 §5.1.7)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _check_nonce(nonce: bytes) -> None:
    if len(nonce) != GCM_NONCE_SIZE:
        raise ValueError("AES-GCM nonces are 12 bytes")
