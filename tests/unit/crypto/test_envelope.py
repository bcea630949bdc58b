from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkhead.crypto import DecryptionFailed, LocalKms, decrypt, encrypt, rewrap
from bulkhead.errors import NotFound

IDS = {"tenant_id": "acme", "kind": "file", "object_id": "f-1"}


def _kek_version(ciphertext: bytes) -> int:
    # BHE1: magic(4) version(1) tenant(2+n) kek-version(4).
    n = int.from_bytes(ciphertext[5:7], "big")
    return int.from_bytes(ciphertext[7 + n : 11 + n], "big")


# The shared KMS is fine: the round trip neither rotates nor destroys keys.
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plaintext=st.binary(max_size=4096), object_id=st.text(max_size=40))
def test_round_trip(kms: LocalKms, plaintext: bytes, object_id: str) -> None:
    ids = IDS | {"object_id": object_id}
    assert decrypt(encrypt(plaintext, **ids, kms=kms), **ids, kms=kms) == plaintext


def test_each_encryption_is_fresh(kms: LocalKms) -> None:
    assert encrypt(b"x", **IDS, kms=kms) != encrypt(b"x", **IDS, kms=kms)


@pytest.mark.parametrize(
    "other", [{"tenant_id": "globex"}, {"kind": "dataset"}, {"object_id": "f-2"}]
)
def test_context_is_bound(kms: LocalKms, other: dict[str, str]) -> None:
    ciphertext = encrypt(b"secret", **IDS, kms=kms)
    with pytest.raises(DecryptionFailed):
        decrypt(ciphertext, **(IDS | other), kms=kms)


def test_ambiguous_ids_differ(kms: LocalKms) -> None:
    ciphertext = encrypt(b"secret", tenant_id="acme", kind="ab", object_id="c", kms=kms)
    with pytest.raises(DecryptionFailed):
        decrypt(ciphertext, tenant_id="acme", kind="a", object_id="bc", kms=kms)


def test_rotation_keeps_old_data_and_uses_the_new_version(kms: LocalKms) -> None:
    old = encrypt(b"old", **IDS, kms=kms)
    assert kms.rotate("acme") == 2
    new = encrypt(b"new", **IDS, kms=kms)
    assert (_kek_version(old), _kek_version(new)) == (1, 2)
    assert decrypt(old, **IDS, kms=kms) == b"old"
    assert decrypt(new, **IDS, kms=kms) == b"new"


def test_rewrap_moves_to_the_new_version_without_touching_the_body(kms: LocalKms) -> None:
    old = encrypt(b"data", **IDS, kms=kms)
    kms.rotate("acme")
    moved = rewrap(old, **IDS, kms=kms)
    assert _kek_version(moved) == 2
    assert moved[-20:] == old[-20:]
    kms.retire("acme", 1)
    assert decrypt(moved, **IDS, kms=kms) == b"data"
    with pytest.raises(DecryptionFailed):
        decrypt(old, **IDS, kms=kms)


def test_destroy_shreds_one_tenant_only(kms: LocalKms) -> None:
    mine = encrypt(b"a", **IDS, kms=kms)
    theirs = encrypt(b"b", **(IDS | {"tenant_id": "globex"}), kms=kms)
    kms.destroy("acme")
    with pytest.raises(DecryptionFailed):
        decrypt(mine, **IDS, kms=kms)
    assert decrypt(theirs, **(IDS | {"tenant_id": "globex"}), kms=kms) == b"b"


def test_recreated_tenant_cannot_read_shredded_data(kms: LocalKms) -> None:
    mine = encrypt(b"a", **IDS, kms=kms)
    kms.destroy("acme")
    kms.create_tenant("acme")
    with pytest.raises(DecryptionFailed):
        decrypt(mine, **IDS, kms=kms)


def test_unknown_tenant_cannot_encrypt(kms: LocalKms) -> None:
    with pytest.raises(NotFound):
        encrypt(b"a", **(IDS | {"tenant_id": "nobody"}), kms=kms)
