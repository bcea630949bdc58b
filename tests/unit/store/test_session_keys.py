"""`SessionKeyring`: the session keys, sealed in the database, shared by replicas, rotated."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bulkhead.crypto import Kek, LocalKms, MemoryKekStore
from bulkhead.errors import IntegrityFailure
from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from bulkhead.identity.sessions import ACTIVATION, TTL_S, issue_session, session_id_of
from bulkhead.store import Database
from bulkhead.store.blobs import BlobStore
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.schema import SessionKeyRow, utcnow
from bulkhead.store.sealed import SealedColumns
from bulkhead.store.session_keys import ROTATE_AFTER, KeyEvent, SessionKeyring

LIFETIME = timedelta(seconds=TTL_S)


@pytest.fixture
def kms() -> LocalKms:
    return LocalKms(MemoryKekStore(), Kek.generate())


@pytest.fixture
def tenant_keys(db: Database, kms: LocalKms, tmp_path: Path) -> TenantKeyring:
    return TenantKeyring(kms, BlobStore(tmp_path / "blobs"), holders=(SealedColumns(db),))


def replica(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring, on_event: KeyEvent | None = None
) -> SessionKeyring:
    return SessionKeyring(db, kms, tenant_keys.ensure, on_event=on_event)


def rows(db: Database) -> list[tuple[str, int, bytes]]:
    with db.platform_transaction() as s:
        found = s.execute(
            select(SessionKeyRow.id, SessionKeyRow.version, SessionKeyRow.sealed).order_by(
                SessionKeyRow.version
            )
        )
        return [(r.id, r.version, bytes(r.sealed)) for r in found]


def test_replicas_on_one_database_share_the_first_key(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    one, two = replica(db, kms, tenant_keys), replica(db, kms, tenant_keys)
    assert one.load().versions == (1,)
    assert two.load().versions == (1,)
    now = utcnow()
    token = issue_session(one.current(), now + LIFETIME, now=now).token
    session_id_of(token, two.current(), now=now)
    assert len(rows(db)) == 1


def test_the_key_is_sealed_under_the_platform_kek_and_bound_to_its_row(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    ring = replica(db, kms, tenant_keys)
    key = ring.load().newest()
    assert key is not None
    row_id, _, sealed = rows(db)[0]
    assert key.secret not in sealed and key.secret.hex().encode() not in sealed
    assert key.secret.hex() not in repr(ring)
    # A sealed key moved to another row does not open there (associated data).
    with db.platform_transaction() as s:
        s.execute(update(SessionKeyRow).values(id="v9"))
    with pytest.raises(IntegrityFailure):
        replica(db, kms, tenant_keys).load()
    # Nor with another platform's KMS.
    with db.platform_transaction() as s:
        s.execute(update(SessionKeyRow).values(id=row_id))
    stranger = LocalKms(MemoryKekStore(), Kek.generate())
    with pytest.raises(IntegrityFailure):
        SessionKeyring(db, stranger, TenantKeyring(stranger, tenant_keys.blobs).ensure).load()


def test_a_failed_reload_keeps_the_keys_held(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    ring = replica(db, kms, tenant_keys)
    held = ring.load()
    with db.platform_transaction() as s:
        s.execute(update(SessionKeyRow).values(sealed=b"BHE1 damaged"))
    ring.refresh()
    assert ring.current() is held


def test_rotation_signs_after_activation_and_keeps_the_old_key_a_lifetime(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    events: list[tuple[str, str, str]] = []
    ring = replica(db, kms, tenant_keys, on_event=lambda *e: events.append(e))
    other = replica(db, kms, tenant_keys)
    start = utcnow()
    old_token = issue_session(ring.load(), start + LIFETIME, now=start).token
    other.load()
    assert ring.rotate(now=start)
    assert ring.current().versions == (1, 2)
    assert events == [("sessions.key.rotate", PLATFORM_KEY_OWNER, "requested: version 2")]
    other.refresh()  # What every replica does as the catalog reloads.
    assert other.current().versions == (1, 2)
    assert ring.current().signing(start).version == 1
    switch = start + ACTIVATION
    new_token = issue_session(ring.current(), switch + LIFETIME, now=switch).token
    session_id_of(new_token, other.current(), now=switch)
    session_id_of(old_token, other.current(), now=start + LIFETIME - timedelta(seconds=1))
    assert [k.version for k in other.current().accepted(switch + LIFETIME)] == [2]
    # The next rotation drops version 1, which no live id can need.
    assert ring.rotate(now=switch + LIFETIME)
    assert [r[1] for r in rows(db)] == [2, 3]


def test_one_replica_rotates_once_per_period(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    one, two = replica(db, kms, tenant_keys), replica(db, kms, tenant_keys)
    one.load()
    now = utcnow()
    assert not one.rotate_if_due(now + ROTATE_AFTER - timedelta(minutes=1))
    assert one.rotate_if_due(now + ROTATE_AFTER)
    assert not two.rotate_if_due(now + ROTATE_AFTER)  # One replica already did.
    assert two.current().versions == (1, 2)


def test_the_tenant_keyring_rewraps_session_keys_when_the_platform_kek_rotates(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    ring = replica(db, kms, tenant_keys)
    key = ring.load().newest()
    assert tenant_keys.versions_in_use(PLATFORM_KEY_OWNER) == {1: 1}
    tenant_keys.rotate(PLATFORM_KEY_OWNER)
    assert tenant_keys.versions_in_use(PLATFORM_KEY_OWNER) == {2: 1}
    tenant_keys.retire(PLATFORM_KEY_OWNER, 1)
    reopened = replica(db, kms, tenant_keys).load().newest()
    assert reopened is not None and key is not None and reopened.secret == key.secret
