"""An attacker's review of the platform's own keys (issue 13, point 4).

Each test attacks one way a key could outlive, escape or be swapped for
another: a secret that lay in plaintext in the data dir kept doing new work
after it was moved into the KMS, a sealed row whose kind or version was
rewritten in the database opened as another key, a scheduled rotation
that failed (the KMS down) was only logged, and a retired HSM key that the
token failed to destroy stayed there for good, listed as destroyed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bulkhead.app.keys import hsm_signing
from bulkhead.audit.checkpoint import Signer
from bulkhead.audit.keys import KIND as AUDIT
from bulkhead.audit.keys import AuditKeyring, verifier_keys
from bulkhead.crypto import Kek, LocalKms, MemoryKekStore
from bulkhead.crypto._pkcs11_ed25519 import labels
from bulkhead.crypto.kms_pkcs11 import Pkcs11Kms
from bulkhead.errors import IntegrityFailure
from bulkhead.runtime.salts import CacheSalts
from bulkhead.store import Database, upgrade
from bulkhead.store.blobs import BlobStore
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.platform_keys import PlatformKeyStore
from bulkhead.store.salt_keys import KIND as SALT
from bulkhead.store.salt_keys import SaltKeyring
from bulkhead.store.schema import AuditKeyRow, PlatformKeyRow, utcnow
from bulkhead.store.sealed import SealedColumns
from tests.support.gateway import GatewayThread
from tests.support.softhsm import SoftHsm

ORIGIN = "bulkhead/audit"


@pytest.fixture
def db(db_url: str, db_admin_url: str | None) -> Iterator[Database]:
    database = Database(db_url)
    upgrade(database, db_admin_url)
    yield database
    database.dispose()


@pytest.fixture
def store(db: Database, tmp_path: Path) -> PlatformKeyStore:
    kms = LocalKms(MemoryKekStore(), Kek.generate())
    keyring = TenantKeyring(kms, BlobStore(tmp_path / "blobs"), holders=(SealedColumns(db),))
    return PlatformKeyStore(db, kms, keyring.ensure)


# A secret that lay in plaintext in the data dir ---------------------------------------------


def test_a_plaintext_audit_seed_moved_in_signs_nothing_new(
    db: Database, store: PlatformKeyStore, tmp_path: Path
) -> None:
    """Whoever read the old `audit/signing.key` (a backup, a snapshot) cannot sign new
    checkpoints; the checkpoints it signed before still verify."""
    legacy = tmp_path / "audit" / "signing.key"
    legacy.parent.mkdir()
    leaked = b"\x05" * 32
    legacy.write_text(leaked.hex())
    published = Signer.from_seed(ORIGIN, leaked).verifier.vkey
    signer = AuditKeyring(store, ORIGIN).load(legacy)
    assert not legacy.exists()
    assert signer.verifier.vkey != published
    assert published in verifier_keys(db)  # old checkpoints keep verifying
    with db.platform_transaction() as s:
        retired = s.get(AuditKeyRow, published)
        assert retired is not None and retired.retired_at is not None
    first = store.rows(AUDIT, ORIGIN)[0]
    assert first.destroyed  # the moved-in seed is gone from the database too
    # A second replica starting with its own copy signs with the stored key as well.
    again = tmp_path / "two" / "signing.key"
    again.parent.mkdir()
    again.write_text(leaked.hex())
    assert AuditKeyring(store, ORIGIN).load(again).verifier == signer.verifier


def test_a_plaintext_cache_salt_secret_moved_in_salts_nothing(
    store: PlatformKeyStore, tmp_path: Path
) -> None:
    """Whoever read the old `keys/cache-salt.key` cannot compute any tenant's salt now."""
    legacy = tmp_path / "cache-salt.key"
    leaked = b"\x09" * 32
    legacy.write_bytes(leaked)
    salts = SaltKeyring(store).load(legacy)
    assert not legacy.exists()
    assert salts.for_tenant("t1") != CacheSalts(leaked).for_tenant("t1")
    assert all(row.destroyed for row in store.rows(SALT)[:-1])
    assert SaltKeyring(store).load().for_tenant("t1") == salts.for_tenant("t1")


# A sealed row rewritten in the database ------------------------------------------------------


def test_a_row_relabelled_as_another_kind_or_version_does_not_open(
    db: Database, store: PlatformKeyStore
) -> None:
    """Someone who can write the database (not the KMS) relabels a sealed row, keeping its
    id (the associated data): it must not open as another kind of key, or a newer version."""
    ring = AuditKeyring(store, ORIGIN)
    signer = ring.load()
    salts = SaltKeyring(store).load()
    salt_row = store.rows(SALT)[0]
    with db.platform_transaction() as s:
        s.execute(
            update(PlatformKeyRow)
            .where(PlatformKeyRow.id == salt_row.id)
            .values(kind=AUDIT, scope=ORIGIN, version=2)
        )
    with pytest.raises(IntegrityFailure):
        AuditKeyring(store, ORIGIN).current()
    with db.platform_transaction() as s:
        s.execute(
            update(PlatformKeyRow)
            .where(PlatformKeyRow.id == salt_row.id)
            .values(kind=SALT, scope="", version=1)
        )
    assert AuditKeyring(store, ORIGIN).current().verifier == signer.verifier
    assert SaltKeyring(store).load().for_tenant("t") == salts.for_tenant("t")


# The maintenance loop, with the KMS failing ------------------------------------------------


def test_a_failed_scheduled_rotation_is_audited_and_alerted(
    gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A platform key that is due but cannot rotate (the KMS refuses) goes on doing new
    work past its period: operators must hear of it, not only a log line."""
    platform = gateway.app.platform_keys
    assert platform is not None

    def down(*args: object) -> None:
        raise ConnectionError("the KMS is unreachable")

    monkeypatch.setattr(platform.keyring.kms, "rotate", down)
    done = platform.rotate_due(utcnow() + timedelta(days=400))
    assert done["platform_kek"] == 0
    kind = "keys.rotation_failed.platform_kek"
    events = [e for e in gateway.audit_events() if e.get("action") == f"anomaly:{kind}"]
    assert events, [e.get("action") for e in gateway.audit_events()][-10:]
    sent = gateway.app.metrics.registry.get_sample_value(
        "bulkhead_alerts_total", {"tenant": "-", "kind": kind}
    )
    assert sent is not None and sent >= 1
    # The keys that could rotate did (one failing holds back none of the others).
    assert done["audit_key"] == done["cache_salt"] == 1, done


# A retired key in the HSM ----------------------------------------------------------------------


def test_a_retired_hsm_key_the_token_failed_to_destroy_goes_at_the_next_run(
    softhsm: SoftHsm, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rotation committed but the token refused to destroy the old key: it must not
    stay in the token for good while the inventory says it is gone."""
    kms = Pkcs11Kms(*softhsm)
    try:
        keyring = TenantKeyring(kms, BlobStore(tmp_path / "blobs"), holders=(SealedColumns(db),))
        origin = f"bulkhead/audit-review-{tmp_path.name[-8:]}"
        ring = AuditKeyring(PlatformKeyStore(db, kms, keyring.ensure), origin, hsm=hsm_signing(kms))
        assert ring.in_hsm, "SoftHSM2 makes Ed25519 keys"
        ring.load()
        old = ring.store.rows(AUDIT, origin)[-1]
        assert old.hsm_label is not None

        def refused(label: str) -> None:
            raise ConnectionError("the token is away")

        monkeypatch.setattr(kms, "destroy_ed25519", refused)
        new = ring.rotate().verifier  # committed: the new key signs from now on
        assert ring.current().verifier == new
        assert old.hsm_label in labels(kms._session)
        [listed] = [k for k in ring.describe(utcnow()) if k.version == old.version]
        assert "destroyed" not in listed.protects.replace("destroys", ""), listed
        # The next maintenance run destroys it (a failure there would be alerted).
        monkeypatch.undo()
        assert not ring.rotate_if_due(utcnow())
        assert old.hsm_label not in labels(kms._session)
        [gone] = [r for r in ring.store.rows(AUDIT, origin) if r.version == old.version]
        assert gone.destroyed
        [listed] = [k for k in ring.describe(utcnow()) if k.version == old.version]
        assert listed.protects.startswith("private key destroyed"), listed
    finally:
        kms.close()


def test_a_replica_that_cannot_follow_a_ca_rotation_is_alerted(
    gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica that cannot open the CA version another one added goes on issuing from the
    version it holds, whose key the others destroy once the new one is active."""
    platform = gateway.app.platform_keys
    assert platform is not None

    def down() -> None:
        raise ConnectionError("the KMS is unreachable")

    monkeypatch.setattr(platform.cas, "_install", down)
    platform.refresh()
    kind = "keys.reload_failed.ca"
    events = [e for e in gateway.audit_events() if e.get("action") == f"anomaly:{kind}"]
    assert events, [e.get("action") for e in gateway.audit_events()][-10:]
    sent = gateway.app.metrics.registry.get_sample_value(
        "bulkhead_alerts_total", {"tenant": "-", "kind": kind}
    )
    assert sent is not None and sent >= 1
