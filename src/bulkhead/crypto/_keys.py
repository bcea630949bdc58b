"""Key objects that are hard to leak by accident (STYLE rule 11).

A key object refuses to show its material in `repr`, refuses pickling and
copying, and hands its bytes out only to a caller that passes the greppable
`EXPORT_KEY_MATERIAL` capability, as Tink's `secret_key_access.TOKEN` does.
Code inside `bulkhead.crypto` uses the keys through `aead_of` and `derive`,
which never return the material.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Final, NoReturn, Self, SupportsIndex, final

from bulkhead.crypto.hazmat import AES_KEY_SIZE, AesGcm, hkdf_sha256

Rng = Callable[[int], bytes]
"""A source of random bytes: `os.urandom` in production, a seeded one in tests."""


@final
class KeyMaterialCapability:
    """The type of the one capability that unlocks `reveal`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EXPORT_KEY_MATERIAL"


EXPORT_KEY_MATERIAL: Final = KeyMaterialCapability()
"""Pass this to `reveal`; grep for it to find every place key bytes leave a key object."""


class _SecretKey:
    """A 32-byte symmetric key; see the module docstring for what it refuses."""

    __slots__ = ("__material", "key_id")

    def __init__(self, material: bytes) -> None:
        if len(material) != AES_KEY_SIZE:
            raise ValueError("keys are 32 bytes")
        self.__material = bytes(material)
        self.key_id = _fingerprint(self.__material)
        """A non-secret fingerprint of the material, for logs and `repr`."""

    @classmethod
    def generate(cls, rng: Rng | None = None) -> Self:
        """Draw a fresh key from `rng` (default `os.urandom`)."""
        return cls((rng or os.urandom)(AES_KEY_SIZE))

    def reveal(self, capability: KeyMaterialCapability) -> bytes:
        """Return the raw key bytes to a caller that holds the export capability."""
        if capability is not EXPORT_KEY_MATERIAL:
            raise PermissionError("revealing key material needs EXPORT_KEY_MATERIAL")
        return self.__material

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError(f"{type(self).__name__} cannot be pickled")

    def __copy__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError(f"{type(self).__name__} cannot be copied")


@final
class DataKey(_SecretKey):
    """A data-encryption key (DEK): encrypts one object, stored only wrapped by a KEK."""

    __slots__ = ()


@final
class Kek(_SecretKey):
    """A key-encryption key: a tenant's KEK, or the master key that wraps KEKs."""

    __slots__ = ()


def aead_of(key: _SecretKey) -> AesGcm:
    """AES-256-GCM under `key`, for use inside `bulkhead.crypto` only."""
    return AesGcm(key.reveal(EXPORT_KEY_MATERIAL))


def derive(key: _SecretKey, *, salt: bytes, info: bytes) -> DataKey:
    """A subkey of `key` by HKDF-SHA256 (RFC 5869), bound to `salt` and `info`."""
    return DataKey(hkdf_sha256(key.reveal(EXPORT_KEY_MATERIAL), salt=salt, info=info))


def _fingerprint(material: bytes) -> str:
    # A domain-separated, truncated hash reveals nothing useful about a 256-bit key.
    return hashlib.sha256(b"bulkhead key id\x00" + material).hexdigest()[:16]
