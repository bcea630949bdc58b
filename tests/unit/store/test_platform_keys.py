"""The platform's own keys in the database: audit signing key, internal CA, cache salt.

Each is sealed under the ``_platform`` KEK and bound to its row, shared by
replicas on one database, moved in from the data-dir file an older version
kept, rotated on a schedule (one replica wins), and re-wrapped when the
platform KEK rotates, with everything else the platform seals.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bulkhead.audit.bundle import verify_bundle
from bulkhead.audit.checkpoint import Signer, Verifier, open_checkpoint
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.export import build_bundle
from bulkhead.audit.keys import KIND as AUDIT
from bulkhead.audit.keys import AuditKeyring, verifier_keys
from bulkhead.audit.log import append_batch
from bulkhead.audit.proofs import VerificationError
from bulkhead.audit.sequencer import Sequencer
from bulkhead.crypto import EXPORT_KEY_MATERIAL, Kek, LocalKms, MemoryKekStore, encrypt
from bulkhead.domain import PrincipalKind, Role
from bulkhead.errors import ConfigError, IntegrityFailure
from bulkhead.identity.ca import PLATFORM_KEY_OWNER, InternalCA
from bulkhead.identity.spiffe import PeerRejected
from bulkhead.identity.totp_vault import TotpVault
from bulkhead.store import Database, repo
from bulkhead.store import upstreams as credentials
from bulkhead.store.blobs import BlobStore
from bulkhead.store.ca_keys import CaKeyring
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.platform_keys import PlatformKeyStore
from bulkhead.store.salt_keys import SaltKeyring
from bulkhead.store.schema import AuditKeyRow, LocalCredentialRow, PlatformKeyRow, utcnow
from bulkhead.store.sealed import SealedColumns
from bulkhead.store.session_keys import SessionKeyring
from bulkhead.store.upstreams import CredentialVault

ORIGIN = "bulkhead/audit"
TD = "bulkhead.test"
WORKER = f"spiffe://{TD}/tenant/acme/worker/dep1"

Events = list[tuple[str, str, str]]


@pytest.fixture
def kms() -> LocalKms:
    return LocalKms(MemoryKekStore(), Kek.generate())


@pytest.fixture
def tenant_keys(db: Database, kms: LocalKms, tmp_path: Path) -> TenantKeyring:
    return TenantKeyring(kms, BlobStore(tmp_path / "blobs"), holders=(SealedColumns(db),))


def store_of(db: Database, kms: LocalKms, tenant_keys: TenantKeyring) -> PlatformKeyStore:
    return PlatformKeyStore(db, kms, tenant_keys.ensure)


def rows(db: Database, kind: str) -> list[PlatformKeyRow]:
    with db.platform_transaction() as s:
        found = s.execute(
            select(PlatformKeyRow).where(PlatformKeyRow.kind == kind).order_by("version")
        )
        return list(found.scalars())


def audit_ring(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring, events: Events | None = None
) -> AuditKeyring:
    on_event = (lambda *e: events.append(e)) if events is not None else None
    return AuditKeyring(store_of(db, kms, tenant_keys), ORIGIN, on_event=on_event)


def append(db: Database, n: int, tag: str) -> None:
    append_batch(
        db, [AuditEvent(action=f"test:{tag}", outcome="success", status=200) for _ in range(n)]
    )


# The audit signing key --------------------------------------------------------------------


def test_the_audit_key_is_a_sealed_seed_bound_to_its_row(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    events: Events = []
    signer = audit_ring(db, kms, tenant_keys, events).load()
    [row] = rows(db, AUDIT)
    assert row.sealed is not None and row.sealed.startswith(b"BHE1")
    assert row.public == signer.verifier.vkey
    assert verifier_keys(db) == [signer.verifier.vkey]
    assert events == [("audit.keys.create", PLATFORM_KEY_OWNER, "version 1, sealed, created")]
    # A sealed seed copied to another row does not open there, nor under another KMS.
    with db.platform_transaction() as s:
        s.execute(update(PlatformKeyRow).values(id="audit-signing/x/1"))
    with pytest.raises(IntegrityFailure):
        audit_ring(db, kms, tenant_keys).current()
    with db.platform_transaction() as s:
        s.execute(update(PlatformKeyRow).values(id=row.id))
    stranger = LocalKms(MemoryKekStore(), Kek.generate())
    with pytest.raises(IntegrityFailure):
        audit_ring(db, stranger, TenantKeyring(stranger, tenant_keys.blobs)).current()


def test_a_data_dir_seed_is_moved_in_and_its_file_removed(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring, tmp_path: Path
) -> None:
    first, second = tmp_path / "one" / "signing.key", tmp_path / "two" / "signing.key"
    for path, seed in ((first, b"\x01" * 32), (second, b"\x02" * 32)):
        path.parent.mkdir()
        path.write_text(seed.hex())
    published = Signer.from_seed(ORIGIN, b"\x01" * 32).verifier.vkey
    one = audit_ring(db, kms, tenant_keys).load(first)
    # The key auditors hold keeps verifying what it signed; having lain in plaintext on
    # disk, it signs nothing new (tests/security/test_review_keys.py).
    assert published in verifier_keys(db) and one.verifier.vkey != published
    assert not first.exists()
    # A second replica with a seed of its own: the stored key wins, its own is retired.
    two = audit_ring(db, kms, tenant_keys).load(second)
    assert two.verifier == one.verifier and not second.exists()
    with db.platform_transaction() as s:
        retired = dict(s.execute(select(AuditKeyRow.vkey, AuditKeyRow.retired_at)).all())
    other = Signer.from_seed(ORIGIN, b"\x02" * 32).verifier.vkey
    assert retired[one.verifier.vkey] is None
    assert retired[published] is not None and retired[other] is not None


def test_a_damaged_seed_file_is_a_clear_error(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring, tmp_path: Path
) -> None:
    path = tmp_path / "signing.key"
    path.write_text("not hex")
    with pytest.raises(ConfigError, match=r"signing\.key"):
        audit_ring(db, kms, tenant_keys).load(path)


def test_rotation_by_one_replica_is_what_every_replica_signs_with(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    """Two sequencers on one database; one replica rotates; every old checkpoint verifies."""
    events: Events = []
    one, two = audit_ring(db, kms, tenant_keys, events), audit_ring(db, kms, tenant_keys)
    old = one.load().verifier
    two.load()
    seq_one, seq_two = Sequencer(db, one, ORIGIN), Sequencer(db, two, ORIGIN)
    append(db, 3, "before")
    before = seq_one.checkpoint()
    assert before is not None
    exported = build_bundle(db, ORIGIN)
    new = one.rotate(now=utcnow()).verifier
    assert new != old and events[-1][0] == "audit.keys.rotate"
    append(db, 2, "after")
    after = seq_two.checkpoint()  # the other replica signs: with the new key
    assert after is not None
    open_checkpoint(after, [new], expected_origin=ORIGIN)
    with pytest.raises(VerificationError):
        open_checkpoint(after, [old], expected_origin=ORIGIN)
    # The old seed is destroyed; its public key stays, retired.
    stored = rows(db, AUDIT)
    assert [r.sealed is None for r in stored] == [True, False]
    assert set(verifier_keys(db)) == {old.vkey, new.vkey}
    # The bundle exported before verifies after, and the whole log with every key.
    keys = [Verifier.from_vkey(v) for v in verifier_keys(db)]
    verify_bundle(exported, keys)
    verify_bundle(build_bundle(db, ORIGIN), keys)
    with pytest.raises(VerificationError):
        verify_bundle(build_bundle(db, ORIGIN), [old])


def test_one_replica_rotates_once_per_period(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    one, two = audit_ring(db, kms, tenant_keys), audit_ring(db, kms, tenant_keys)
    one.load()
    now = utcnow()
    assert not one.rotate_if_due(now + timedelta(days=89))
    assert one.rotate_if_due(now + timedelta(days=90))
    assert not two.rotate_if_due(now + timedelta(days=90))
    assert [r.version for r in rows(db, AUDIT)] == [1, 2]


# The internal CA --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


def ca_ring(
    db: Database,
    kms: LocalKms,
    tenant_keys: TenantKeyring,
    clock: Clock,
    events: Events | None = None,
) -> CaKeyring:
    on_event = (lambda *e: events.append(e)) if events is not None else None
    store = store_of(db, kms, tenant_keys)
    return CaKeyring(
        store,
        TD,
        activation=timedelta(minutes=5),
        rotation_days=365,
        on_event=on_event,
        clock=clock,
    )


def test_the_ca_key_is_sealed_in_the_database_and_shared(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    clock = Clock()
    one = ca_ring(db, kms, tenant_keys, clock).load()
    two = ca_ring(db, kms, tenant_keys, clock).load()
    assert one.cert == two.cert
    [row] = rows(db, "ca")
    assert row.sealed is not None and row.sealed.startswith(b"BHE1")
    assert one._key.reveal_der(EXPORT_KEY_MATERIAL) not in row.sealed
    assert b"PRIVATE KEY" not in row.sealed
    assert two.verify_peer(one.issue(WORKER).cert, "tenant/acme/worker/dep1")
    stranger = LocalKms(MemoryKekStore(), Kek.generate())
    with pytest.raises(IntegrityFailure):
        ca_ring(db, stranger, TenantKeyring(stranger, tenant_keys.blobs), clock).load()


def test_a_data_dir_ca_is_moved_in_and_its_files_removed(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring, tmp_path: Path
) -> None:
    legacy = tmp_path / "ca"
    legacy.mkdir()
    old = InternalCA.create(TD)
    tenant_keys.ensure(PLATFORM_KEY_OWNER)
    sealed = encrypt(
        old._key.reveal_der(EXPORT_KEY_MATERIAL),
        tenant_id=PLATFORM_KEY_OWNER,
        kind="ca-key",
        object_id=TD,
        kms=kms,
    )
    (legacy / "ca.key.enc").write_bytes(sealed)
    (legacy / "ca.pem").write_bytes(old.cert_pem)
    issued = old.issue(f"spiffe://{TD}/tenant/acme/client/laptop")
    ca = ca_ring(db, kms, tenant_keys, Clock()).load(legacy)
    assert ca.cert == old.cert  # client certificates issued before keep working
    assert ca.verify_tenant_client(issued.cert, "acme")
    assert list(legacy.iterdir()) == []


def test_ca_rotation_trusts_first_issues_later_and_drops_the_old_when_its_leaves_end(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    clock, events = Clock(), []
    ring = ca_ring(db, kms, tenant_keys, clock, events)
    other = ca_ring(db, kms, tenant_keys, clock)
    ca, replica = ring.load(), other.load()
    start = ca.fingerprint()
    client = ca.issue(f"spiffe://{TD}/tenant/acme/client/laptop", timedelta(days=30))
    ring.rotate()
    other.refresh()  # what every replica does as the catalog reloads
    assert events[-1][0] == "ca.rotate"
    for held in (ca, replica):
        assert len(held.certs) == 2 and held.fingerprint() != start
        assert held.issue(WORKER).cert.issuer == client.cert.issuer  # still the old one
    clock.now += timedelta(minutes=5)
    new_leaf = replica.issue(WORKER)
    assert new_leaf.cert.issuer != client.cert.issuer  # the new version issues now
    assert ca.verify_peer(new_leaf.cert, "tenant/acme/worker/dep1")
    assert ca.verify_tenant_client(client.cert, "acme")
    # Maintenance destroys the old key; the old certificate stays trusted meanwhile.
    ring.prune()
    assert [r.sealed is None for r in rows(db, "ca")] == [True, False]
    clock.now += timedelta(days=29)
    ring.refresh()
    assert ca.verify_tenant_client(client.cert, "acme")
    clock.now += timedelta(days=2)  # every leaf of the old version has expired
    ring.prune()
    other.refresh()
    assert len(replica.certs) == 1 and [r.version for r in rows(db, "ca")] == [2]
    with pytest.raises(PeerRejected):
        replica.verify_peer(client.cert, lambda _: True)


def test_the_ca_rotates_on_schedule_once(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    clock = Clock()
    one, two = ca_ring(db, kms, tenant_keys, clock), ca_ring(db, kms, tenant_keys, clock)
    one.load()
    two.load()
    start = clock.now
    assert not one.rotate_if_due(start + timedelta(days=364))
    assert one.rotate_if_due(start + timedelta(days=365))
    assert not two.rotate_if_due(start + timedelta(days=365))
    assert [r.version for r in rows(db, "ca")] == [1, 2]


# The cache-salt secret --------------------------------------------------------------------


def test_cache_salts_are_shared_moved_in_and_rotated(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring, tmp_path: Path
) -> None:
    legacy = tmp_path / "cache-salt.key"
    legacy.write_bytes(b"\x07" * 32)
    store = store_of(db, kms, tenant_keys)
    one, two = SaltKeyring(store), SaltKeyring(store_of(db, kms, tenant_keys))
    salts = one.load(legacy)
    assert not legacy.exists()
    before = salts.for_tenant("t1")
    assert two.load().for_tenant("t1") == before  # every replica sends the same salt
    assert salts.for_tenant("t2") != before
    one.rotate()
    two.refresh()
    assert salts.for_tenant("t1") == two.salts.for_tenant("t1") != before
    # The moved-in secret (it lay in plaintext on disk) was destroyed at once, then version 2.
    assert [r.sealed is None for r in rows(db, "cache-salt")] == [True, True, False]
    assert not one.rotate_if_due(utcnow() + timedelta(days=89))
    assert one.rotate_if_due(utcnow() + timedelta(days=91))


# The platform KEK re-wraps everything the platform seals -------------------------------------


def test_rotating_the_platform_kek_rewraps_every_platform_secret(
    db: Database, kms: LocalKms, tenant_keys: TenantKeyring
) -> None:
    store = store_of(db, kms, tenant_keys)
    signer = AuditKeyring(store, ORIGIN).load()
    ca = CaKeyring(store, TD).load()
    salt = SaltKeyring(store).load().for_tenant("t1")
    session = SessionKeyring(db, kms, tenant_keys.ensure).load().newest()
    vault = CredentialVault(kms, tenant_keys.ensure)
    totp = TotpVault(kms, tenant_keys.ensure)
    with db.platform_transaction() as s:
        admin = repo.create_principal(s, None, "admin", PrincipalKind.USER, [Role.PLATFORM_ADMIN])
        credentials.create_credential(
            s, "up", credential_id="cred1", env=None, sealed=vault.seal("cred1", "s3cret")
        )
        s.add(
            LocalCredentialRow(
                principal_id=admin.id,
                tenant_id=None,
                password_hash="x",
                totp_secret=totp.seal(b"totp-secret", tenant_id=None, principal_id=admin.id),
                recovery_hashes=[],
                failed_attempts=0,
                updated_at=utcnow(),
            )
        )
    kinds = tenant_keys.kinds_in_use(PLATFORM_KEY_OWNER)
    assert kinds == {1: {"platform-key": 3, "session-key": 1, "upstream-credential": 1, "totp": 1}}
    rotation = tenant_keys.rotate(PLATFORM_KEY_OWNER)
    assert rotation.rewrapped == 6 and rotation.unreadable == ()
    assert tenant_keys.versions_in_use(PLATFORM_KEY_OWNER) == {2: 6}
    tenant_keys.retire(PLATFORM_KEY_OWNER, 1)
    # Everything opens after version 1 is gone, in a fresh process's view.
    fresh = store_of(db, kms, tenant_keys)
    assert AuditKeyring(fresh, ORIGIN).current().verifier == signer.verifier
    assert CaKeyring(fresh, TD).load().cert == ca.cert
    assert SaltKeyring(fresh).load().for_tenant("t1") == salt
    reopened = SessionKeyring(db, kms, tenant_keys.ensure).load().newest()
    assert reopened is not None and session is not None and reopened.secret == session.secret
    with db.platform_transaction() as s:
        row = s.get(LocalCredentialRow, admin.id)
        assert row is not None and row.totp_secret is not None
        sealed = bytes(row.totp_secret)
    assert totp.open(sealed, tenant_id=None, principal_id=admin.id) == b"totp-secret"
    with db.platform_transaction() as s:
        stored = credentials.get_credential(s, "up")
    assert stored.source == "sealed"
    vault = CredentialVault(kms, tenant_keys.ensure)
    assert vault.open("cred1", _sealed_credential(db)) == "s3cret"


def _sealed_credential(db: Database) -> bytes:
    from bulkhead.store.schema import UpstreamCredentialRow

    with db.platform_transaction() as s:
        value = s.execute(select(UpstreamCredentialRow.sealed)).scalar_one()
    assert value is not None
    return bytes(value)
