"""`TenantKeyring`: one rotation moves every kind and format of a tenant's objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.crypto import (
    DecryptionFailed,
    Kek,
    LocalKms,
    MemoryKekStore,
    decrypt,
    decrypt_stream_bytes,
    encrypt,
    encrypt_stream_bytes,
)
from bulkhead.errors import Conflict
from bulkhead.store.blobs import BlobStore
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.sealed import SealedObject


@pytest.fixture
def keyring(tmp_path: Path) -> TenantKeyring:
    events: list[tuple[str, str, str]] = []
    ring = TenantKeyring(
        LocalKms(MemoryKekStore(), Kek.generate()),
        BlobStore(tmp_path),
        on_event=lambda *e: events.append(e),
    )
    ring.events = events  # type: ignore[attr-defined]
    return ring


def test_rotation_rewraps_envelopes_and_streams(keyring: TenantKeyring) -> None:
    kms, blobs = keyring.kms, keyring.blobs
    keyring.ensure("t1")
    keyring.ensure("t2")
    blobs.put(
        "t1", "file", "a", encrypt(b"env", tenant_id="t1", kind="file", object_id="a", kms=kms)
    )
    stream = encrypt_stream_bytes(
        b"s" * 100, tenant_id="t1", kind="model", object_id="m-0", kms=kms, segment_size=16
    )
    blobs.put("t1", "model", "m-0", stream)
    blobs.put(
        "t2", "file", "b", encrypt(b"other", tenant_id="t2", kind="file", object_id="b", kms=kms)
    )
    assert keyring.versions_in_use("t1") == {1: 2}

    rotation = keyring.rotate("t1")
    assert rotation.status.primary == 2 and rotation.rewrapped == 2 and not rotation.unreadable
    assert keyring.versions_in_use("t1") == {2: 2} and keyring.versions_in_use("t2") == {1: 1}
    keyring.retire("t1", 1)
    got = blobs.get("t1", "file", "a")
    assert decrypt(got, tenant_id="t1", kind="file", object_id="a", kms=kms) == b"env"
    got = blobs.get("t1", "model", "m-0")
    assert decrypt_stream_bytes(got, tenant_id="t1", kind="model", object_id="m-0", kms=kms) == (
        b"s" * 100
    )
    assert [e[0] for e in keyring.events] == [  # type: ignore[attr-defined]
        "kms.create", "kms.create", "kms.rotate", "kms.retire",
    ]  # fmt: skip


def test_damaged_objects_are_reported_not_fatal(keyring: TenantKeyring) -> None:
    kms, blobs = keyring.kms, keyring.blobs
    keyring.ensure("t1")
    good = encrypt(b"ok", tenant_id="t1", kind="file", object_id="g", kms=kms)
    blobs.put("t1", "file", "g", good)
    blobs.put("t1", "file", "bad", good[:-1] + bytes([good[-1] ^ 1]))  # tag no longer matches?
    blobs.put("t1", "file", "junk", b"not a ciphertext")
    rotation = keyring.rotate("t1")
    # Only the header is checked on re-wrap; the moved blob's own AD no longer matches.
    assert "file/junk" in rotation.unreadable and "file/bad" in rotation.unreadable
    assert rotation.rewrapped == 1


def test_retire_refuses_a_version_in_use(keyring: TenantKeyring) -> None:
    keyring.ensure("t1")
    sealed = encrypt(b"x", tenant_id="t1", kind="file", object_id="x", kms=keyring.kms)
    keyring.blobs.put("t1", "file", "x", sealed)
    with pytest.raises(Conflict):
        keyring.retire("t1", 1)


def test_shred_destroys_keys_and_blobs(keyring: TenantKeyring, tmp_path: Path) -> None:
    keyring.ensure("t1")
    sealed = encrypt(b"x", tenant_id="t1", kind="file", object_id="x", kms=keyring.kms)
    keyring.blobs.put("t1", "file", "x", sealed)
    keyring.shred("t1")
    assert not (tmp_path / "t1").exists()
    with pytest.raises(DecryptionFailed):
        decrypt(sealed, tenant_id="t1", kind="file", object_id="x", kms=keyring.kms)


class RowHolder:
    """Sealed values kept outside the blob store (as the database's sealed columns are)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], bytes] = {}

    def objects(self, owner: str) -> Iterator[SealedObject]:
        for (tenant, object_id), value in list(self.values.items()):
            if tenant == owner:
                yield SealedObject("totp", object_id, lambda v=value: v)

    def replace(self, owner: str, found: SealedObject, old: bytes, fresh: bytes) -> bool:
        if self.values.get((owner, found.object_id)) != old:
            return False
        self.values[(owner, found.object_id)] = fresh
        return True


def test_every_holder_is_rotated_and_counted(tmp_path: Path) -> None:
    rows = RowHolder()
    keyring = TenantKeyring(
        LocalKms(MemoryKekStore(), Kek.generate()), BlobStore(tmp_path), holders=(rows,)
    )
    keyring.ensure("t1")
    rows.values[("t1", "p1")] = encrypt(
        b"secret", tenant_id="t1", kind="totp", object_id="p1", kms=keyring.kms
    )
    rows.values[("t1", "junk")] = b"xxx"  # damaged: reported, never fatal
    assert keyring.versions_in_use("t1") == {1: 1}
    with pytest.raises(Conflict):
        keyring.retire("t1", 1)
    rotation = keyring.rotate("t1")
    assert rotation.rewrapped == 1 and rotation.unreadable == ("totp/junk",)
    assert keyring.versions_in_use("t1") == {2: 1}
    keyring.retire("t1", 1)
    opened = decrypt(
        rows.values[("t1", "p1")], tenant_id="t1", kind="totp", object_id="p1", kms=keyring.kms
    )
    assert opened == b"secret"


def test_first_key_is_made_under_the_shared_lock_and_only_then(tmp_path: Path) -> None:
    """Replicas share the KMS: a tenant's first key is made under a lock they all share."""
    import contextlib

    held: list[str] = []
    inside: list[bool] = []

    @contextlib.contextmanager
    def shared(name: str) -> Iterator[None]:
        held.append(name)
        yield
        inside.append(True)

    kms = LocalKms(MemoryKekStore(), Kek.generate())
    ring = TenantKeyring(kms, BlobStore(tmp_path), shared_lock=shared)
    assert ring.ensure("t1").primary == 1
    assert held == ["bulkhead/kek-create/t1"] and inside == [True]
    ring.ensure("t1")  # it exists: no lock taken
    assert held == ["bulkhead/kek-create/t1"]
