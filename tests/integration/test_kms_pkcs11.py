"""`Pkcs11Kms` against a real SoftHSM2 token, and a conformance suite shared with `LocalKms`.

The conformance cases run once per backend, so the HSM backend is held to the
exact semantics of the reference one.  The token is shared by the whole
session, so every test names its tenants with a random suffix.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from bulkhead.crypto import (
    EXPORT_KEY_MATERIAL,
    DataKey,
    DecryptionFailed,
    Kek,
    Kms,
    LocalKms,
    MemoryKekStore,
    decrypt,
    encrypt,
    rewrap,
)
from bulkhead.crypto.kms_pkcs11 import APPLICATION, Pkcs11Kms
from bulkhead.errors import ConfigError, Conflict, NotFound
from bulkhead.settings import load
from tests.support.softhsm import SoftHsm

BACKENDS = ("local", "pkcs11")
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
AAD = b"object:f-1"


class Clock:
    """A clock that stands still until told to move."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def kms(request: pytest.FixtureRequest, clock: Clock) -> Iterator[Kms]:
    if request.param == "local":
        yield LocalKms(MemoryKekStore(), Kek.generate(), clock=clock)
        return
    hsm: SoftHsm = request.getfixturevalue("softhsm")
    instance = Pkcs11Kms(*hsm, clock=clock)
    yield instance
    instance.close()


@pytest.fixture
def hsm_kms(softhsm: SoftHsm) -> Iterator[Pkcs11Kms]:
    instance = Pkcs11Kms(*softhsm)
    yield instance
    instance.close()


@pytest.fixture
def name() -> Callable[[str], str]:
    """Tenant ids unique to this test, as the token outlives it."""
    suffix = uuid.uuid4().hex[:12]
    return lambda base: f"{base}-{suffix}"


def material(key: DataKey) -> bytes:
    return key.reveal(EXPORT_KEY_MATERIAL)


def raw_session(hsm: SoftHsm) -> pkcs11.Session:
    """A session beside the KMS's own (the process is already logged in through it)."""
    return pkcs11.lib(hsm.module_path).get_token(token_label=hsm.label).open(rw=True)


# Conformance: the same cases on LocalKms and Pkcs11Kms.


def test_wrap_unwrap_round_trip(kms: Kms, name: Callable[[str], str]) -> None:
    acme = name("acme")
    kms.create_tenant(acme)
    dek = DataKey.generate()
    version, wrapped = kms.wrap_dek(acme, dek, AAD)
    assert version == 1
    assert len(wrapped) == 12 + 32 + 16
    assert material(kms.unwrap_dek(acme, version, wrapped, AAD)) == material(dek)
    # A fresh nonce each time: wrapping twice never gives the same bytes.
    assert kms.wrap_dek(acme, dek, AAD)[1] != wrapped


def test_aad_mismatch_fails(kms: Kms, name: Callable[[str], str]) -> None:
    acme = name("acme")
    kms.create_tenant(acme)
    version, wrapped = kms.wrap_dek(acme, DataKey.generate(), AAD)
    for aad in (b"", b"object:f-2", AAD + b"\x00", AAD[:-1]):
        with pytest.raises(DecryptionFailed):
            kms.unwrap_dek(acme, version, wrapped, aad)


def test_other_tenant_and_unknown_tenant_fail(kms: Kms, name: Callable[[str], str]) -> None:
    acme, globex = name("acme"), name("globex")
    kms.create_tenant(acme)
    kms.create_tenant(globex)
    version, wrapped = kms.wrap_dek(acme, DataKey.generate(), AAD)
    with pytest.raises(DecryptionFailed):
        kms.unwrap_dek(globex, version, wrapped, AAD)
    with pytest.raises(DecryptionFailed):
        kms.unwrap_dek(name("nobody"), version, wrapped, AAD)
    for version_ in (version + 1, 0, -1, 1 << 32):
        with pytest.raises(DecryptionFailed):
            kms.unwrap_dek(acme, version_, wrapped, AAD)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda w: w[:-1], id="truncated-tag"),
        pytest.param(lambda w: w[:12], id="nonce-only"),
        pytest.param(lambda w: b"", id="empty"),
        pytest.param(lambda w: bytes([w[0] ^ 1]) + w[1:], id="nonce-bit-flip"),
        pytest.param(lambda w: w[:20] + bytes([w[20] ^ 0x80]) + w[21:], id="body-bit-flip"),
        pytest.param(lambda w: w[:-1] + bytes([w[-1] ^ 1]), id="tag-bit-flip"),
        pytest.param(lambda w: w + b"\x00", id="extended"),
    ],
)
def test_tampered_wrapped_key_fails(
    kms: Kms, name: Callable[[str], str], mangle: Callable[[bytes], bytes]
) -> None:
    acme = name("acme")
    kms.create_tenant(acme)
    version, wrapped = kms.wrap_dek(acme, DataKey.generate(), AAD)
    with pytest.raises(DecryptionFailed):
        kms.unwrap_dek(acme, version, mangle(wrapped), AAD)


def test_create_twice_conflicts(kms: Kms, name: Callable[[str], str]) -> None:
    acme = name("acme")
    status = kms.create_tenant(acme)
    assert (status.tenant_id, status.primary) == (acme, 1)
    assert [(v.version, v.created_at, v.retired_at) for v in status.versions] == [(1, NOW, None)]
    with pytest.raises(Conflict):
        kms.create_tenant(acme)


def test_rotate_makes_new_primary_and_old_still_unwraps(
    kms: Kms, name: Callable[[str], str], clock: Clock
) -> None:
    acme = name("acme")
    kms.create_tenant(acme)
    dek = DataKey.generate()
    old = kms.wrap_dek(acme, dek, AAD)
    clock.now = NOW.replace(year=2031)
    assert kms.rotate(acme) == 2
    status = kms.status(acme)
    assert status.primary == 2
    assert [(v.version, v.created_at) for v in status.versions] == [(1, NOW), (2, clock.now)]
    version, wrapped = kms.wrap_dek(acme, dek, AAD)
    assert version == 2
    assert material(kms.unwrap_dek(acme, version, wrapped, AAD)) == material(dek)
    assert material(kms.unwrap_dek(acme, *old, AAD)) == material(dek)
    # A ciphertext wrapped under v1 does not open under v2, and vice versa.
    with pytest.raises(DecryptionFailed):
        kms.unwrap_dek(acme, 2, old[1], AAD)
    with pytest.raises(DecryptionFailed):
        kms.unwrap_dek(acme, 1, wrapped, AAD)


def test_rewrap_moves_to_primary(kms: Kms, name: Callable[[str], str]) -> None:
    acme = name("acme")
    kms.create_tenant(acme)
    dek = DataKey.generate()
    old = kms.wrap_dek(acme, dek, AAD)
    kms.rotate(acme)
    kms.rotate(acme)
    version, wrapped = kms.rewrap(acme, *old, AAD)
    assert version == 3
    assert material(kms.unwrap_dek(acme, version, wrapped, AAD)) == material(dek)
    with pytest.raises(DecryptionFailed):
        kms.rewrap(acme, old[0], old[1], b"other aad")


def test_retire_makes_old_ciphertexts_fail(
    kms: Kms, name: Callable[[str], str], clock: Clock
) -> None:
    acme = name("acme")
    kms.create_tenant(acme)
    old = kms.wrap_dek(acme, DataKey.generate(), AAD)
    kms.rotate(acme)
    current = kms.wrap_dek(acme, DataKey.generate(), AAD)
    with pytest.raises(Conflict):
        kms.retire(acme, 2)
    with pytest.raises(NotFound):
        kms.retire(acme, 7)
    clock.now = NOW.replace(year=2032)
    kms.retire(acme, 1)
    kms.retire(acme, 1)  # a second retire changes nothing
    with pytest.raises(DecryptionFailed):
        kms.unwrap_dek(acme, *old, AAD)
    with pytest.raises(DecryptionFailed):
        kms.rewrap(acme, *old, AAD)
    kms.unwrap_dek(acme, *current, AAD)
    status = kms.status(acme)
    assert status.primary == 2
    assert [(v.version, v.retired_at) for v in status.versions] == [(1, clock.now), (2, None)]
    assert kms.rotate(acme) == 3


def test_destroy_shreds_one_tenant_only(kms: Kms, name: Callable[[str], str]) -> None:
    acme, globex = name("acme"), name("globex")
    kms.create_tenant(acme)
    kms.create_tenant(globex)
    first = kms.wrap_dek(acme, DataKey.generate(), AAD)
    kms.rotate(acme)
    second = kms.wrap_dek(acme, DataKey.generate(), AAD)
    theirs = kms.wrap_dek(globex, DataKey.generate(), AAD)
    kms.destroy(acme)
    for version, wrapped in (first, second):
        with pytest.raises(DecryptionFailed):
            kms.unwrap_dek(acme, version, wrapped, AAD)
    for operation in (
        lambda: kms.status(acme),
        lambda: kms.rotate(acme),
        lambda: kms.retire(acme, 1),
        lambda: kms.destroy(acme),
        lambda: kms.wrap_dek(acme, DataKey.generate(), AAD),
    ):
        with pytest.raises(NotFound):
            operation()
    kms.unwrap_dek(globex, *theirs, AAD)
    assert kms.status(globex).primary == 1
    # A new key under the same tenant id does not bring the old data back.
    kms.create_tenant(acme)
    with pytest.raises(DecryptionFailed):
        kms.unwrap_dek(acme, *first, AAD)


def test_unknown_tenant_management_is_not_found(kms: Kms, name: Callable[[str], str]) -> None:
    nobody = name("nobody")
    for operation in (
        lambda: kms.status(nobody),
        lambda: kms.rotate(nobody),
        lambda: kms.retire(nobody, 1),
        lambda: kms.destroy(nobody),
        lambda: kms.wrap_dek(nobody, DataKey.generate(), AAD),
    ):
        with pytest.raises(NotFound):
            operation()


def test_envelope_recipe_end_to_end(kms: Kms, name: Callable[[str], str]) -> None:
    acme, globex = name("acme"), name("globex")
    kms.create_tenant(acme)
    kms.create_tenant(globex)
    ids = {"tenant_id": acme, "kind": "file", "object_id": "f-1"}
    ciphertext = encrypt(b"tenant data", kms=kms, tenant_id=acme, kind="file", object_id="f-1")
    assert decrypt(ciphertext, kms=kms, **ids) == b"tenant data"
    with pytest.raises(DecryptionFailed):
        decrypt(ciphertext, kms=kms, tenant_id=acme, kind="file", object_id="f-2")
    with pytest.raises(DecryptionFailed):
        decrypt(ciphertext, kms=kms, tenant_id=globex, kind="file", object_id="f-1")
    kms.rotate(acme)
    moved = rewrap(ciphertext, kms=kms, **ids)
    kms.retire(acme, 1)
    assert decrypt(moved, kms=kms, **ids) == b"tenant data"
    with pytest.raises(DecryptionFailed):
        decrypt(ciphertext, kms=kms, **ids)
    kms.destroy(acme)
    with pytest.raises(DecryptionFailed):
        decrypt(moved, kms=kms, **ids)


def test_concurrent_use_is_safe(kms: Kms, name: Callable[[str], str]) -> None:
    tenants = [name(f"t{i}") for i in range(4)]
    for tenant in tenants:
        kms.create_tenant(tenant)
    errors: list[BaseException] = []

    def work(tenant: str) -> None:
        try:
            for _ in range(20):
                dek = DataKey.generate()
                wrapped = kms.wrap_dek(tenant, dek, AAD)
                assert material(kms.unwrap_dek(tenant, *wrapped, AAD)) == material(dek)
            kms.rotate(tenant)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in tenants * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(kms.status(t).primary == 3 for t in tenants)


# PKCS#11 only.


def test_keks_are_sensitive_non_extractable_token_objects(
    softhsm: SoftHsm, hsm_kms: Pkcs11Kms, name: Callable[[str], str]
) -> None:
    acme = name("acme")
    hsm_kms.create_tenant(acme)
    hsm_kms.rotate(acme)
    with raw_session(softhsm) as session:
        keys = list(
            session.get_objects(
                {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.ID: acme.encode()}
            )
        )
        assert sorted(k[Attribute.LABEL] for k in keys) == [
            f"bulkhead:kek:{acme}:1",
            f"bulkhead:kek:{acme}:2",
        ]
        for key in keys:
            assert key[Attribute.KEY_TYPE] == KeyType.AES
            assert key[Attribute.VALUE_LEN] == 32
            assert key[Attribute.TOKEN] is True
            assert key[Attribute.PRIVATE] is True
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.ALWAYS_SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.NEVER_EXTRACTABLE] is True
            assert key[Attribute.WRAP] is False
            assert key[Attribute.DERIVE] is False
            with pytest.raises(pkcs11.AttributeSensitive):
                key[Attribute.VALUE]
            with pytest.raises(pkcs11.PKCS11Error):
                key[Attribute.EXTRACTABLE] = True


def test_retire_and_destroy_remove_key_objects(
    softhsm: SoftHsm, hsm_kms: Pkcs11Kms, name: Callable[[str], str]
) -> None:
    acme = name("acme")
    hsm_kms.create_tenant(acme)
    hsm_kms.rotate(acme)
    hsm_kms.retire(acme, 1)

    def objects() -> list[str]:
        with raw_session(softhsm) as session:
            keys = session.get_objects({Attribute.ID: acme.encode()})
            meta = session.get_objects(
                {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: f"bulkhead:meta:{acme}"}
            )
            return sorted(o[Attribute.LABEL] for o in [*keys, *meta])

    assert objects() == [f"bulkhead:kek:{acme}:2", f"bulkhead:meta:{acme}"]
    hsm_kms.destroy(acme)
    assert objects() == []


def test_metadata_object_is_private_and_holds_no_key_material(
    softhsm: SoftHsm, hsm_kms: Pkcs11Kms, name: Callable[[str], str]
) -> None:
    acme = name("acme")
    hsm_kms.create_tenant(acme)
    hsm_kms.rotate(acme)
    with raw_session(softhsm) as session:
        [meta] = session.get_objects(
            {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: f"bulkhead:meta:{acme}"}
        )
        assert meta[Attribute.APPLICATION] == APPLICATION
        assert meta[Attribute.PRIVATE] is True
        assert meta[Attribute.TOKEN] is True
        assert set(meta[Attribute.VALUE]).issubset(range(0x20, 0x7F))  # JSON text only
    # Without a login the private objects are invisible.
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pkcs11, sys; from pkcs11 import Attribute; "
            "s = pkcs11.lib(sys.argv[1]).get_token(token_label=sys.argv[2]).open(); "
            "print(len(list(s.get_objects({Attribute.ID: sys.argv[3].encode()}))))",
            softhsm.module_path,
            softhsm.label,
            acme,
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        out, _ = child.communicate(timeout=60)
    assert out.strip() == "0"


def test_orphan_key_of_an_interrupted_rotate_is_replaced(
    softhsm: SoftHsm, hsm_kms: Pkcs11Kms, name: Callable[[str], str]
) -> None:
    acme = name("acme")
    hsm_kms.create_tenant(acme)
    with raw_session(softhsm) as session:  # a rotate that died before recording version 2
        session.generate_key(
            KeyType.AES, 256, id=acme.encode(), label=f"bulkhead:kek:{acme}:2", store=True
        )
    assert hsm_kms.rotate(acme) == 2
    version, wrapped = hsm_kms.wrap_dek(acme, DataKey.generate(), AAD)
    assert version == 2
    hsm_kms.unwrap_dek(acme, version, wrapped, AAD)


def test_second_instance_sees_the_same_keys(
    softhsm: SoftHsm, hsm_kms: Pkcs11Kms, name: Callable[[str], str]
) -> None:
    acme = name("acme")
    hsm_kms.create_tenant(acme)
    dek = DataKey.generate()
    old = hsm_kms.wrap_dek(acme, dek, AAD)
    hsm_kms.rotate(acme)
    other = Pkcs11Kms(*softhsm)
    try:
        assert hsm_kms.status(acme) == other.status(acme)
        assert other.status(acme).primary == 2
        assert material(other.unwrap_dek(acme, *old, AAD)) == material(dek)
        other.rotate(acme)
        other.retire(acme, 1)
        assert hsm_kms.status(acme).primary == 3
        with pytest.raises(DecryptionFailed):
            hsm_kms.unwrap_dek(acme, *old, AAD)
    finally:
        other.close()


def test_another_process_sees_the_same_keys(
    softhsm: SoftHsm, hsm_kms: Pkcs11Kms, name: Callable[[str], str]
) -> None:
    acme = name("acme")
    hsm_kms.create_tenant(acme)
    hsm_kms.rotate(acme)
    hsm_kms.rotate(acme)
    hsm_kms.retire(acme, 1)
    script = (
        "import sys; from bulkhead.crypto.kms_pkcs11 import Pkcs11Kms; "
        "kms = Pkcs11Kms(sys.argv[1], sys.argv[2], sys.stdin.read()); "
        "s = kms.status(sys.argv[3]); kms.rotate(sys.argv[3]); "
        "print(s.primary, [(v.version, v.retired_at is None) for v in s.versions])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, softhsm.module_path, softhsm.label, acme],
        input=softhsm.pin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3 [(1, False), (2, True), (3, True)]"
    assert hsm_kms.status(acme).primary == 4


def test_wrong_pin_is_a_config_error_without_the_pin(softhsm: SoftHsm, hsm_kms: Pkcs11Kms) -> None:
    # In this process the token is already logged in (through hsm_kms).
    wrong = "wrong-" + softhsm.pin
    with pytest.raises(ConfigError) as caught:
        Pkcs11Kms(softhsm.module_path, softhsm.label, wrong)
    message = str(caught.value)
    assert "\n" not in message
    assert wrong not in message and softhsm.pin not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_wrong_pin_in_a_fresh_process(softhsm: SoftHsm) -> None:
    script = (
        "import sys\n"
        "from bulkhead.crypto.kms_pkcs11 import Pkcs11Kms\n"
        "from bulkhead.errors import ConfigError\n"
        "try:\n"
        "    Pkcs11Kms(sys.argv[1], sys.argv[2], sys.stdin.read())\n"
        "except ConfigError as exc:\n"
        "    print('ConfigError:', exc)\n"
    )
    wrong = "wrong-" + softhsm.pin
    done = subprocess.run(
        [sys.executable, "-c", script, softhsm.module_path, softhsm.label],
        input=wrong,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ConfigError: The PIN was rejected")
    assert len(done.stdout.strip().splitlines()) == 1
    assert wrong not in done.stdout + done.stderr


def test_missing_token_or_module_is_a_config_error(softhsm: SoftHsm, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No PKCS#11 token") as caught:
        Pkcs11Kms(softhsm.module_path, "no-such-token", softhsm.pin)
    assert softhsm.pin not in str(caught.value)
    with pytest.raises(ConfigError, match="could not be loaded") as caught:
        Pkcs11Kms(str(tmp_path / "missing.so"), softhsm.label, softhsm.pin)
    assert softhsm.pin not in str(caught.value)


def test_pin_never_shown(softhsm: SoftHsm, hsm_kms: Pkcs11Kms) -> None:
    assert softhsm.pin not in repr(hsm_kms)
    assert softhsm.pin not in str(hsm_kms)
    assert repr(hsm_kms) == f"Pkcs11Kms(token={softhsm.label!r})"
    held = [getattr(hsm_kms, slot, None) for slot in dir(hsm_kms)]
    assert not any(softhsm.pin in repr(value) for value in held)


# Settings and wiring.


def test_settings_choose_pkcs11(softhsm: SoftHsm, tmp_path: Path) -> None:
    env = {
        "BULKHEAD_KMS": "pkcs11",
        "BULKHEAD_PKCS11_MODULE": softhsm.module_path,
        "BULKHEAD_PKCS11_TOKEN": softhsm.label,
        "BULKHEAD_PKCS11_PIN": softhsm.pin,
    }
    settings = load(data_dir=tmp_path, env=env)
    assert settings.kms_backend == "pkcs11"
    assert settings.pkcs11_pin == softhsm.pin
    assert softhsm.pin not in repr(settings)
    assert load(data_dir=tmp_path, env={}).kms_backend == "local"
    for missing in ("BULKHEAD_PKCS11_MODULE", "BULKHEAD_PKCS11_TOKEN", "BULKHEAD_PKCS11_PIN"):
        partial = {k: v for k, v in env.items() if k != missing}
        with pytest.raises(ConfigError, match=missing) as caught:
            load(data_dir=tmp_path, env=partial)
        assert softhsm.pin not in str(caught.value)
        assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="BULKHEAD_KMS must be"):
        load(data_dir=tmp_path, env={"BULKHEAD_KMS": "vault"})


def test_open_kms_returns_pkcs11(softhsm: SoftHsm, tmp_path: Path) -> None:
    from bulkhead.app import open_kms

    env = {
        "BULKHEAD_KMS": "pkcs11",
        "BULKHEAD_PKCS11_MODULE": softhsm.module_path,
        "BULKHEAD_PKCS11_TOKEN": softhsm.label,
        "BULKHEAD_PKCS11_PIN": softhsm.pin,
    }
    kms = open_kms(load(data_dir=tmp_path, env=env))
    assert isinstance(kms, Pkcs11Kms)
    kms.close()
    assert isinstance(open_kms(load(data_dir=tmp_path, env={})), LocalKms)
