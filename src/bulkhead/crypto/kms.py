"""The key-management interface the envelope formats are written against.

Each tenant has one key-encryption key (KEK) with numbered versions.  The
newest version wraps new data keys; every version not retired still unwraps
(like cryptography's `MultiFernet`).  Backends: `LocalKms` (an embedded
keyring) and `Pkcs11Kms` (any PKCS#11 HSM; KEKs generated and kept in the token).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from bulkhead.crypto._keys import DataKey


@dataclass(frozen=True, slots=True)
class KekVersionStatus:
    """One version of a tenant's KEK, described without its material."""

    version: int
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class TenantKeyStatus:
    """A tenant's KEK versions; `primary` is the one that wraps new data keys."""

    tenant_id: str
    primary: int
    versions: tuple[KekVersionStatus, ...]


class Kms(Protocol):
    """Per-tenant KEKs with versions; material never leaves the backend.

    `unwrap_dek` and `rewrap` raise one opaque `DecryptionFailed` for any
    failure, an unknown tenant included.  The management operations raise
    `NotFound` for an unknown tenant or version and `Conflict` for a clash.
    """

    def create_tenant(self, tenant_id: str) -> TenantKeyStatus: ...

    def rotate(self, tenant_id: str) -> int: ...

    def retire(self, tenant_id: str, version: int) -> None: ...

    def destroy(self, tenant_id: str) -> None: ...

    def status(self, tenant_id: str) -> TenantKeyStatus: ...

    def wrap_dek(self, tenant_id: str, dek: DataKey, aad: bytes) -> tuple[int, bytes]: ...

    def unwrap_dek(self, tenant_id: str, version: int, wrapped: bytes, aad: bytes) -> DataKey: ...

    def rewrap(
        self, tenant_id: str, version: int, wrapped: bytes, aad: bytes
    ) -> tuple[int, bytes]: ...


@runtime_checkable
class Ed25519Keys(Protocol):
    """Ed25519 signing keys generated and used inside the KMS (an HSM): no seed leaves it.

    A KMS that can offers these (`Pkcs11Kms` on a token with ``CKM_EDDSA``);
    `ed25519_supported` says whether this one's token really can.  Keys are
    named by a label the caller chooses; `sign` raises `NotFound` for a key
    that is not there.
    """

    def ed25519_supported(self) -> bool: ...

    def create_ed25519(self, label: str) -> bytes: ...

    def sign_ed25519(self, label: str, public_key: bytes, message: bytes) -> bytes: ...

    def destroy_ed25519(self, label: str) -> None: ...
