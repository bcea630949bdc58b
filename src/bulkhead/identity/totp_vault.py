"""TOTP secrets at rest: envelope-encrypted under the KEK of the principal's tenant.

A TOTP secret is a shared secret, so unlike a password it cannot be stored
as a hash: whoever reads it can mint codes.  Each one is sealed with the
`BHE1` envelope recipe under the tenant's KEK, with associated data naming
the tenant, the kind ``totp`` and the principal's id (STYLE rule 10), so a
copy of the database without the KMS yields no secret, and a ciphertext
copied to another principal or tenant fails to open.  Platform principals
(no tenant) use the KEK of the ``_platform`` pseudo-tenant, like the CA key.

Rows written before migration 0015 hold the raw 20-byte secret.  There is no
KMS inside a migration, so such a legacy secret is still accepted and sealed
on its next successful verification (`is_legacy`); see the migration.
Crypto-shredding a tenant makes its principals' TOTP secrets unrecoverable,
which is the point: the tenant is gone.
"""

from __future__ import annotations

from collections.abc import Callable

from bulkhead.crypto import Kms, decrypt, encrypt
from bulkhead.crypto.envelope import MAGIC
from bulkhead.identity.ca import PLATFORM_KEY_OWNER

KIND = "totp"
LEGACY_LENGTH = 20
"""The length of what `totp.new_secret` returns: a plaintext secret from before 0015."""


def key_owner(tenant_id: str | None) -> str:
    """The KMS tenant whose KEK seals this principal's secret."""
    return tenant_id if tenant_id is not None else PLATFORM_KEY_OWNER


class TotpVault:
    """Seals and opens TOTP secrets; `ensure_key` creates a tenant's first KEK when needed."""

    def __init__(self, kms: Kms, ensure_key: Callable[[str], object]):
        self._kms, self._ensure_key = kms, ensure_key

    def __repr__(self) -> str:
        return "TotpVault()"

    def seal(self, secret: bytes, *, tenant_id: str | None, principal_id: str) -> bytes:
        owner = key_owner(tenant_id)
        self._ensure_key(owner)
        return encrypt(secret, tenant_id=owner, kind=KIND, object_id=principal_id, kms=self._kms)

    def open(self, stored: bytes, *, tenant_id: str | None, principal_id: str) -> bytes:
        """The secret; raise `DecryptionFailed` for a ciphertext that is not this principal's."""
        if is_legacy(stored):
            return stored
        owner = key_owner(tenant_id)
        return decrypt(stored, tenant_id=owner, kind=KIND, object_id=principal_id, kms=self._kms)


def is_legacy(stored: bytes) -> bool:
    """Whether `stored` is a plaintext secret written before migration 0015."""
    return len(stored) == LEGACY_LENGTH and not stored.startswith(MAGIC)
