from __future__ import annotations

import base64
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bulkhead.crypto import (
    EXPORT_KEY_MATERIAL,
    DataKey,
    DecryptionFailed,
    Kek,
    LocalKms,
    MemoryKekStore,
    decrypt,
    encrypt,
    load_or_create_master_key,
    master_key_from_base64,
)
from bulkhead.errors import ConfigError, Conflict, NotFound

IDS = {"tenant_id": "acme", "kind": "file", "object_id": "f-1"}


class RecordingRng:
    """`os.urandom` that remembers every 32-byte draw (the KEKs LocalKms makes)."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        out = os.urandom(size)
        if size == 32:
            self.keys.append(out)
        return out


def test_store_file_is_0600_and_holds_no_plaintext_kek(tmp_path: Path) -> None:
    rng = RecordingRng()
    kms = LocalKms(tmp_path, Kek.generate(), rng=rng)
    kms.create_tenant("acme")
    kms.rotate("acme")
    path = tmp_path / "keks.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert len(rng.keys) == 2
    for kek in rng.keys:
        for form in (kek, kek.hex().encode(), base64.b64encode(kek), base64.b64encode(kek)[:-4]):
            assert form not in raw
    assert [p.name for p in tmp_path.iterdir()] == ["keks.json"]


def test_reload_from_file_keeps_data_readable(tmp_path: Path) -> None:
    master = Kek.generate()
    kms = LocalKms(tmp_path, master)
    kms.create_tenant("acme")
    ciphertext = encrypt(b"persisted", **IDS, kms=kms)
    assert decrypt(ciphertext, **IDS, kms=LocalKms(tmp_path, master)) == b"persisted"


def test_wrong_master_key_is_refused_at_start(tmp_path: Path) -> None:
    LocalKms(tmp_path, Kek.generate()).create_tenant("acme")
    with pytest.raises(ConfigError):
        LocalKms(tmp_path, Kek.generate())


def test_destroy_is_persisted(tmp_path: Path) -> None:
    master = Kek.generate()
    kms = LocalKms(tmp_path, master)
    kms.create_tenant("acme")
    kms.create_tenant("globex")
    ciphertext = encrypt(b"x", **IDS, kms=kms)
    kms.destroy("acme")
    reloaded = LocalKms(tmp_path, master)
    with pytest.raises(DecryptionFailed):
        decrypt(ciphertext, **IDS, kms=reloaded)
    assert reloaded.status("globex").primary == 1


def test_status_lists_versions_without_material() -> None:
    clock = datetime(2024, 5, 1, tzinfo=UTC)
    kms = LocalKms(MemoryKekStore(), Kek.generate(), clock=lambda: clock)
    kms.create_tenant("acme")
    kms.rotate("acme")
    kms.retire("acme", 1)
    status = kms.status("acme")
    assert status.primary == 2
    assert [(v.version, v.retired_at) for v in status.versions] == [(1, clock), (2, None)]
    assert "wrapped" not in repr(status)


def test_retired_version_fails_closed(kms: LocalKms) -> None:
    dek = DataKey.generate()
    version, wrapped = kms.wrap_dek("acme", dek, b"ctx")
    kms.rotate("acme")
    assert kms.unwrap_dek("acme", version, wrapped, b"ctx").key_id == dek.key_id
    kms.retire("acme", version)
    with pytest.raises(DecryptionFailed):
        kms.unwrap_dek("acme", version, wrapped, b"ctx")
    with pytest.raises(DecryptionFailed):
        kms.rewrap("acme", version, wrapped, b"ctx")


def test_wrapped_dek_is_bound_to_tenant_and_aad(kms: LocalKms) -> None:
    version, wrapped = kms.wrap_dek("acme", DataKey.generate(), b"ctx")
    for tenant, aad in (("globex", b"ctx"), ("acme", b"other"), ("nobody", b"ctx")):
        with pytest.raises(DecryptionFailed):
            kms.unwrap_dek(tenant, version, wrapped, aad)


def test_management_errors(kms: LocalKms) -> None:
    with pytest.raises(Conflict):
        kms.create_tenant("acme")
    with pytest.raises(Conflict):
        kms.retire("acme", 1)
    for operation in (kms.rotate, kms.destroy, kms.status):
        with pytest.raises(NotFound):
            operation("nobody")
    with pytest.raises(NotFound):
        kms.retire("acme", 9)


def test_repr_reveals_nothing(kms: LocalKms) -> None:
    assert repr(kms) == "LocalKms(tenants=2)"


def test_concurrent_rotate_encrypt_decrypt(kms: LocalKms) -> None:
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for step in range(30):
                ids = IDS | {"object_id": f"{index}-{step}"}
                assert decrypt(encrypt(b"payload", **ids, kms=kms), **ids, kms=kms) == b"payload"
        except BaseException as error:
            errors.append(error)

    def rotator() -> None:
        for _ in range(20):
            kms.rotate("acme")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    threads.append(threading.Thread(target=rotator))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert kms.status("acme").primary == 21


def test_master_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = load_or_create_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(path).key_id == first.key_id


def test_master_key_file_with_loose_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    load_or_create_master_key(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError):
        load_or_create_master_key(path)


def test_master_key_from_base64() -> None:
    key = Kek.generate()
    text = base64.b64encode(key.reveal(EXPORT_KEY_MATERIAL)).decode()
    assert master_key_from_base64(text).key_id == key.key_id
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ConfigError):
            master_key_from_base64(bad)
