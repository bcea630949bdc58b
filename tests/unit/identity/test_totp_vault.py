"""TOTP secrets at rest: sealed per principal, legacy plaintext recognised, copies refused."""

from __future__ import annotations

import pytest

from bulkhead.crypto import DecryptionFailed, Kek, LocalKms, MemoryKekStore
from bulkhead.crypto.envelope import MAGIC
from bulkhead.identity import totp
from bulkhead.identity.totp_vault import TotpVault, is_legacy, key_owner


@pytest.fixture
def vault() -> TotpVault:
    kms = LocalKms(MemoryKekStore(), Kek.generate())

    def ensure(tenant_id: str) -> None:
        try:
            kms.status(tenant_id)
        except Exception:
            kms.create_tenant(tenant_id)

    return TotpVault(kms, ensure)


def test_a_sealed_secret_opens_for_its_principal_only(vault: TotpVault) -> None:
    secret = totp.new_secret()
    sealed = vault.seal(secret, tenant_id="t1", principal_id="p1")
    assert sealed.startswith(MAGIC) and secret not in sealed and not is_legacy(sealed)
    assert vault.open(sealed, tenant_id="t1", principal_id="p1") == secret
    vault.seal(b"x" * 20, tenant_id="t2", principal_id="p1")  # t2 gets a KEK of its own.
    for tenant_id, principal_id in (("t1", "p2"), ("t2", "p1"), (None, "p1")):
        with pytest.raises(DecryptionFailed):
            vault.open(sealed, tenant_id=tenant_id, principal_id=principal_id)


def test_platform_principals_use_the_platform_pseudo_tenant(vault: TotpVault) -> None:
    assert key_owner(None) == "_platform"
    sealed = vault.seal(b"s" * 20, tenant_id=None, principal_id="admin")
    assert b"_platform" in sealed[:32]
    assert vault.open(sealed, tenant_id=None, principal_id="admin") == b"s" * 20


def test_a_legacy_plaintext_secret_is_returned_as_it_is(vault: TotpVault) -> None:
    secret = totp.new_secret()
    assert is_legacy(secret)
    assert vault.open(secret, tenant_id="t1", principal_id="p1") == secret


@pytest.mark.parametrize(
    "bad",
    [b"", b"short", b"x" * 21, MAGIC + b"\x01" + b"x" * 15, MAGIC + b"\x01" + b"\x00" * 60],
    ids=["empty", "short", "long-plaintext", "magic-20-bytes", "garbage-envelope"],
)
def test_anything_else_fails_closed(vault: TotpVault, bad: bytes) -> None:
    vault.seal(b"x" * 20, tenant_id="t1", principal_id="p1")
    with pytest.raises(DecryptionFailed):
        vault.open(bad, tenant_id="t1", principal_id="p1")
