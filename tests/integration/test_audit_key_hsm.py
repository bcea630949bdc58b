"""The audit signing key in a real SoftHSM2 token: Ed25519 made, used and destroyed there.

Which path the gateway takes is decided by the token's mechanism list
(`app.keys.hsm_signing`): these tests read that list themselves and assert
the path taken from it, so a token without ``CKM_EC_EDWARDS_KEY_PAIR_GEN``
would show the sealed-seed fallback instead.  The SoftHSM2 this project
tests with (2.6) has it, so the key lives in the token.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from bulkhead.app.keys import hsm_signing
from bulkhead.audit.bundle import verify_bundle
from bulkhead.audit.checkpoint import Verifier, open_checkpoint
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.export import build_bundle
from bulkhead.audit.keys import KIND, AuditKeyring, verifier_keys
from bulkhead.audit.log import append_batch
from bulkhead.audit.proofs import VerificationError
from bulkhead.audit.sequencer import Sequencer
from bulkhead.crypto import Kek, LocalKms, MemoryKekStore
from bulkhead.crypto._pkcs11_ed25519 import ID, labels
from bulkhead.crypto.kms_pkcs11 import Pkcs11Kms
from bulkhead.store import Database, upgrade
from bulkhead.store.blobs import BlobStore
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.platform_keys import PlatformKeyStore
from bulkhead.store.schema import utcnow
from bulkhead.store.sealed import SealedColumns
from tests.integration.test_platform_key_rotation import Traffic, export, verify
from tests.support.gateway import GatewayThread
from tests.support.softhsm import SoftHsm


@pytest.fixture
def hsm_kms(softhsm: SoftHsm) -> Iterator[Pkcs11Kms]:
    instance = Pkcs11Kms(*softhsm)
    yield instance
    instance.close()


@pytest.fixture
def db(db_url: str, db_admin_url: str | None) -> Iterator[Database]:
    database = Database(db_url)
    upgrade(database, db_admin_url)
    yield database
    database.dispose()


@pytest.fixture
def origin() -> str:
    """An origin of this test's own: the token outlives it, and labels name their version."""
    return f"bulkhead/audit-{uuid.uuid4().hex[:8]}"


def token_makes_ed25519(hsm: SoftHsm) -> bool:
    """What the token itself says, asked without Bulkhead's code."""
    token = pkcs11.lib(hsm.module_path).get_token(token_label=hsm.label)
    mechanisms = set(token.slot.get_mechanisms())
    return {Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA} <= mechanisms


def ring_of(db: Database, kms: Pkcs11Kms | LocalKms, origin: str, tmp: Path) -> AuditKeyring:
    keyring = TenantKeyring(kms, BlobStore(tmp / "blobs"), holders=(SealedColumns(db),))
    store = PlatformKeyStore(db, kms, keyring.ensure)
    return AuditKeyring(store, origin, hsm=hsm_signing(kms))


def append(db: Database, n: int, tag: str) -> None:
    append_batch(
        db, [AuditEvent(action=f"test:{tag}", outcome="success", status=200) for _ in range(n)]
    )


def private_key(hsm: SoftHsm, label: str) -> dict[str, object]:
    """The attributes of the private key labelled `label`, read from a session of our own."""
    token = pkcs11.lib(hsm.module_path).get_token(token_label=hsm.label)
    # The process is logged in already (through the KMS's session): this one shares it.
    with token.open(rw=True) as session:
        query = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: ID, Attribute.LABEL: label}
        [key] = list(session.get_objects(query))
        with pytest.raises(pkcs11.PKCS11Error):  # sensitive: its value never leaves
            key[Attribute.VALUE]
        return {
            name: key[attr]
            for name, attr in (
                ("key_type", Attribute.KEY_TYPE),
                ("token", Attribute.TOKEN),
                ("sensitive", Attribute.SENSITIVE),
                ("always_sensitive", Attribute.ALWAYS_SENSITIVE),
                ("extractable", Attribute.EXTRACTABLE),
                ("never_extractable", Attribute.NEVER_EXTRACTABLE),
                ("private", Attribute.PRIVATE),
                ("sign", Attribute.SIGN),
            )
        }


def test_the_path_taken_follows_the_tokens_mechanisms(
    softhsm: SoftHsm, hsm_kms: Pkcs11Kms, db: Database, origin: str, tmp_path: Path
) -> None:
    in_token = token_makes_ed25519(softhsm)
    ring = ring_of(db, hsm_kms, origin, tmp_path)
    assert ring.in_hsm is in_token
    ring.load()
    newest = ring.store.rows(KIND, origin)[-1]
    held_in = ring.describe(newest.created_at)[-1].held_in
    if in_token:
        assert newest.hsm_label is not None and newest.sealed is None and held_in == "hsm"
    else:
        assert newest.hsm_label is None and newest.sealed is not None
        assert held_in == "sealed (_platform KEK)"
    # A local KMS has no token: always the sealed seed, and nothing made in the HSM for it.
    local = LocalKms(MemoryKekStore(), Kek.generate())
    assert hsm_signing(local) is None


def test_the_key_is_made_in_the_token_non_extractable_and_signs_there(
    softhsm: SoftHsm, hsm_kms: Pkcs11Kms, db: Database, origin: str, tmp_path: Path
) -> None:
    assert token_makes_ed25519(softhsm), "SoftHSM2 2.6 offers CKM_EDDSA; this token does not"
    ring = ring_of(db, hsm_kms, origin, tmp_path)
    signer = ring.load()
    stored = ring.store.rows(KIND, origin)
    # Version 1 (a sealed seed, made before the HSM was asked) moved into the token at once.
    assert [(r.sealed is None, r.hsm_label is not None) for r in stored] == [
        (True, False),
        (True, True),
    ]
    label = stored[-1].hsm_label
    assert label is not None and label in labels(hsm_kms._session)
    attributes = private_key(softhsm, label)
    assert attributes == {
        "key_type": KeyType.EC_EDWARDS,
        "token": True,
        "sensitive": True,
        "always_sensitive": True,
        "extractable": False,
        "never_extractable": True,
        "private": True,
        "sign": True,
    }
    # A signature made in the token verifies with the public key on the record.
    message = b"a checkpoint body\n"
    assert signer.verifier.vkey == stored[-1].public
    Verifier.from_vkey(stored[-1].public or "").verify(message, signer.sign(message))


def test_rotation_in_the_token_keeps_old_checkpoints_verifiable(
    softhsm: SoftHsm, hsm_kms: Pkcs11Kms, db: Database, origin: str, tmp_path: Path
) -> None:
    ring = ring_of(db, hsm_kms, origin, tmp_path)
    old = ring.load().verifier
    sequencer = Sequencer(db, ring, origin)
    append(db, 3, "before")
    before = sequencer.checkpoint()
    assert before is not None
    exported = build_bundle(db, origin)
    old_label = ring.store.rows(KIND, origin)[-1].hsm_label
    new = ring.rotate().verifier
    assert new != old
    # The old private key is gone from the token; the new one is there.
    held = labels(hsm_kms._session)
    new_label = ring.store.rows(KIND, origin)[-1].hsm_label
    assert old_label not in held and new_label in held
    append(db, 2, "after")
    # Another replica (a second session on the token) signs with the same key.
    replica_kms = Pkcs11Kms(*softhsm)
    try:
        replica = ring_of(db, replica_kms, origin, tmp_path)
        after = Sequencer(db, replica, origin).checkpoint()
    finally:
        replica_kms.close()
    assert after is not None
    open_checkpoint(after, [new], expected_origin=origin)
    with pytest.raises(VerificationError):
        open_checkpoint(after, [old], expected_origin=origin)
    keys = [Verifier.from_vkey(v) for v in verifier_keys(db)]
    assert {old, new} <= set(keys)
    verify_bundle(exported, keys)  # exported before the rotation, verified after it
    whole = build_bundle(db, origin)
    verify_bundle(whole, keys)
    for note in whole["checkpoints"]:  # every checkpoint, old and new, verifies
        open_checkpoint(note.encode(), keys, expected_origin=origin)


def test_a_gateway_on_the_hsm_rotates_its_audit_key_under_load(
    softhsm: SoftHsm, tmp_path: Path
) -> None:
    """`BULKHEAD_KMS=pkcs11`: the gateway's key lives in the token and rotates there, live."""
    env = {
        "BULKHEAD_KMS": "pkcs11",
        "BULKHEAD_PKCS11_MODULE": softhsm.module_path,
        "BULKHEAD_PKCS11_TOKEN": softhsm.label,
        "BULKHEAD_PKCS11_PIN": softhsm.pin,
        "BULKHEAD_MAINTENANCE_INTERVAL_S": "0",
    }
    gw = GatewayThread(tmp_path / "data", None, env=env).start()
    try:
        keys = gw.app.platform_keys
        assert keys is not None and keys.audit.in_hsm is token_makes_ed25519(softhsm)
        hsm = gw.app.maintenance.keyring.kms
        assert isinstance(hsm, Pkcs11Kms)
        gw.grant("admin:audit.export.get", "platform", duration_s=3600)
        before, _ = export(gw, tmp_path, "before")
        trusted = tmp_path / "trusted.checkpoint"
        trusted.write_text(json.loads(before.read_text())["checkpoints"][-1])
        old_labels = {r.hsm_label for r in keys.audit.store.rows(KIND, keys.audit.origin)}
        calls = {
            "models": lambda: gw.call("GET", "/v1/models", gw.demo_key),
            "admin": lambda: gw.admin("GET", "/admin/v1/tenants"),
        }
        with Traffic(calls) as traffic:
            time.sleep(1)
            gw.grant("admin:audit.keys.rotate")
            assert gw.admin("POST", "/admin/v1/audit/keys/rotate").status == 200
            time.sleep(2)
            days = gw.settings.audit_key_rotation_days
            assert keys.audit.rotate_if_due(utcnow() + timedelta(days=days))
            time.sleep(2)
        assert traffic.failures == [], traffic.failures[:5]
        assert traffic.total > 100
        after, public = export(gw, tmp_path, "after")
        assert verify(before, public)["verified"] is True  # exported before, verified after
        verified = verify(after, public, "--trusted-checkpoint", str(trusted), "--full")
        assert verified["verified"] is True
        newest = keys.audit.store.rows(KIND, keys.audit.origin)[-1]
        assert newest.hsm_label is not None and newest.sealed is None
        held = labels(hsm._session)
        assert newest.hsm_label in held and not (old_labels - {None}) & held
        [active] = [
            k
            for k in gw.must("GET", "/admin/v1/keys/status")["data"]
            if k["kind"] == "audit-signing" and k["state"] == "active"
        ]
        assert active["held_in"] == "hsm"
        print(f"\naudit key rotation in the HSM: {traffic.sent} requests, 0 failed")
    finally:
        gw.stop()
