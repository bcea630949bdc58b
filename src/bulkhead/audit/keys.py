"""The audit log's checkpoint-signing key, held by the KMS, and the public keys of every signer.

There is one signing key for the whole platform, whichever replica signs,
kept in `platform_keys` (`store.platform_keys`): with ``BULKHEAD_KMS=pkcs11``
on a token that offers ``CKM_EDDSA`` it is an Ed25519 key generated in the
HSM, sensitive and non-extractable, that signs there; otherwise an Ed25519
seed sealed under the ``_platform`` KEK, whose plaintext exists only in the
memory of the gateways that sign.  A seed left in the data dir by an older
version (``audit/signing.key``) is moved in on the first start and the file
removed, and the key is then replaced at once (by one made in the HSM where
there is one): a seed that lay in plaintext on disk signs nothing new.

Every replica signs with the newest version: the sequencer asks `signer_for`
inside the transaction that records a checkpoint, under the checkpoint lock
(`audit.sequencer`), which a rotation takes too, so no checkpoint is signed
with a key after the rotation that retired it committed.  A rotation stores
the next version (one of two replicas rotating at once wins), destroys the
old private key (its sealed seed at once; its HSM object right after, or by
the next maintenance run if the token was away) and records every
signer's verifier key in `audit_keys`, where it stays: old checkpoints keep
verifying, and `bulkhead audit public-key` gives an auditor all of them.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from bulkhead.audit.checkpoint import Signer, Verifier
from bulkhead.audit.sequencer import CHECKPOINT_LOCK
from bulkhead.crypto import Ed25519Keys
from bulkhead.errors import ConfigError, IntegrityFailure
from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from bulkhead.store.db import Database
from bulkhead.store.keyring import KeyEvent
from bulkhead.store.platform_keys import KeyInfo, NewKey, PlatformKey, PlatformKeyStore
from bulkhead.store.schema import AuditKeyRow, utcnow

KIND = "audit-signing"
DEFAULT_ROTATION_DAYS = 90
log = logging.getLogger("bulkhead.audit")


def register(db: Database, verifier: Verifier) -> None:
    """Record a signer's verifier key (kept for good, so its checkpoints stay verifiable)."""
    with db.platform_transaction() as session:
        _register(session, verifier, utcnow())


def _register(session: Session, verifier: Verifier, now: datetime) -> None:
    if session.get(AuditKeyRow, verifier.vkey) is None:
        session.add(
            AuditKeyRow(vkey=verifier.vkey, name=verifier.name, created_at=now, retired_at=None)
        )


def verifier_keys(db: Database) -> list[str]:
    # Public keys, in a table without row-level security: tenants read them too.
    with db.transaction() as session:
        return list(
            session.execute(select(AuditKeyRow.vkey).order_by(AuditKeyRow.created_at)).scalars()
        )


def _quiet(action: str, owner: str, detail: str) -> None:
    return None


class AuditKeyring:
    """Loads, creates and rotates the platform's checkpoint-signing key."""

    def __init__(
        self,
        store: PlatformKeyStore,
        origin: str,
        *,
        hsm: Ed25519Keys | None = None,
        rotation_days: int = DEFAULT_ROTATION_DAYS,
        on_event: KeyEvent | None = None,
    ):
        """`hsm`: a KMS whose token makes and uses Ed25519 keys; None keeps sealed seeds."""
        self.store, self.origin, self.hsm = store, origin, hsm
        self.rotation_days = rotation_days
        self._on_event = on_event or _quiet
        self._lock = threading.Lock()
        self._held: tuple[str, Signer] | None = None

    def __repr__(self) -> str:
        return f"AuditKeyring(origin={self.origin!r})"

    @property
    def in_hsm(self) -> bool:
        return self.hsm is not None

    def load(self, legacy: Path | None = None, *, now: datetime | None = None) -> Signer:
        """The current signer; the first key is made (or moved in from `legacy`) if none is."""
        now = now or utcnow()
        if not self.store.rows(KIND, self.origin):
            self._first(legacy, now)
        elif legacy is not None and legacy.exists():
            self._retire_file(legacy, now)
        return self.current()

    def current(self) -> Signer:
        """The newest version, read now."""
        with self.store.db.platform_transaction() as session:
            return self.signer_for(session)

    def signer_for(self, session: Session) -> Signer:
        """The newest version as of the caller's transaction (the sequencer's, under its lock)."""
        rows = self.store.rows(KIND, self.origin, session)
        if not rows:
            raise IntegrityFailure("no audit signing key is stored")
        newest = rows[-1]
        with self._lock:
            if self._held is not None and self._held[0] == newest.id:
                return self._held[1]
        signer = self._signer(newest)
        with self._lock:
            self._held = (newest.id, signer)
        return signer

    def rotate(self, *, reason: str = "requested", now: datetime | None = None) -> Signer:
        """Sign with a new key from now on; the old private key is destroyed, its public kept."""
        now = now or utcnow()
        rows = self.store.rows(KIND, self.origin)
        version = (rows[-1].version if rows else 0) + 1
        new, where = self._make(version, now)
        if self.store.add(
            KIND, self.origin, new, also=lambda s: self._supersede(s, rows, new, now)
        ):
            try:
                self.destroy_retired()
            except Exception as exc:  # The token is away: the next maintenance run retries.
                log.error("retired audit key not destroyed yet: %s", type(exc).__name__)
            self._on_event(
                "audit.keys.rotate", PLATFORM_KEY_OWNER, f"{reason}: version {version}, {where}"
            )
        elif new.hsm_label is not None and self.hsm is not None:
            self.hsm.destroy_ed25519(new.hsm_label)  # another replica's key won
        return self.current()

    def rotate_if_due(self, now: datetime | None = None) -> bool:
        """Rotate once the newest key is `rotation_days` old; whether this call rotated."""
        now = now or utcnow()
        self.destroy_retired()
        rows = self.store.rows(KIND, self.origin)
        if self.rotation_days <= 0 or not rows:
            return False
        if rows[-1].created_at + timedelta(days=self.rotation_days) > now:
            return False
        before = rows[-1].id
        self.rotate(reason="scheduled", now=now)
        return self.store.rows(KIND, self.origin)[-1].id != before

    def destroy_retired(self) -> None:
        """Destroy the HSM objects of retired versions, and forget their labels.

        A rotation tries at once; each maintenance run tries again (and its
        failure is alerted), so a token that was away when the rotation
        committed does not keep a retired key for good.
        """
        if self.hsm is None:
            return
        for row in self.store.rows(KIND, self.origin):
            if row.retired_at is not None and row.hsm_label is not None:
                self.hsm.destroy_ed25519(row.hsm_label)
                self.store.forget_label(row)

    def describe(self, now: datetime) -> list[KeyInfo]:
        """Every version, for the key inventory: the newest signs, the others only verify."""
        rows = self.store.rows(KIND, self.origin)
        return [self._info(row, row is rows[-1]) for row in rows]

    def _info(self, row: PlatformKey, newest: bool) -> KeyInfo:
        held_in = "hsm" if row.hsm_label else "sealed (_platform KEK)"
        if newest:
            state, protects = "active", "signs every new checkpoint of the audit log"
            due = _after(row.created_at, self.rotation_days)
        elif row.hsm_label is not None:
            state, due = "verify-only", None
            protects = "retired; its private key is still in the HSM until the next run destroys it"
        else:
            state, due = "verify-only", None
            protects = "private key destroyed; its public key verifies the checkpoints it signed"
            held_in = "public key only"
        return KeyInfo(KIND, "platform", row.version, state, held_in, row.created_at, due, protects)

    # Internals.

    def _first(self, legacy: Path | None, now: datetime) -> None:
        """Version 1: the data dir's seed moved in (published keys still verify), or a new one."""
        seed = _read_seed(legacy) if legacy is not None and legacy.exists() else os.urandom(32)
        signer = Signer.from_seed(self.origin, seed)
        new = NewKey(1, now, secret=seed, public=signer.verifier.vkey)
        if self.store.add(
            KIND, self.origin, new, also=lambda s: _register(s, signer.verifier, now)
        ):
            moved = legacy is not None and legacy.exists()
            detail = "moved in from the data dir" if moved else "created"
            self._on_event("audit.keys.create", PLATFORM_KEY_OWNER, f"version 1, sealed, {detail}")
            # A seed that lay in plaintext in the data dir (its backups, its snapshots)
            # signs nothing new: its public key stays for the checkpoints it signed.
            if self.hsm is not None:
                self.rotate(reason="moved into the HSM", now=now)
            elif moved:
                self.rotate(reason="the data dir's seed was in plaintext", now=now)
        elif legacy is not None and legacy.exists():
            self._retire_file(legacy, now)  # another replica's key was stored first
        if legacy is not None:
            _remove(legacy)

    def _retire_file(self, legacy: Path, now: datetime) -> None:
        """A replica's own old seed: its public key stays, marked retired; the file goes."""
        verifier = Signer.from_seed(self.origin, _read_seed(legacy)).verifier
        with self.store.db.platform_transaction() as session:
            _register(session, verifier, now)
            session.execute(
                update(AuditKeyRow)
                .where(AuditKeyRow.vkey == verifier.vkey, AuditKeyRow.retired_at.is_(None))
                .values(retired_at=now)
            )
        _remove(legacy)

    def _make(self, version: int, now: datetime) -> tuple[NewKey, str]:
        if self.hsm is not None:
            label = f"bulkhead:audit:{version}:{secrets.token_hex(4)}"
            public = Verifier(self.origin, self.hsm.create_ed25519(label))
            return NewKey(version, now, hsm_label=label, public=public.vkey), "in the HSM"
        seed = os.urandom(32)
        public = Signer.from_seed(self.origin, seed).verifier
        return NewKey(version, now, secret=seed, public=public.vkey), "sealed"

    def _supersede(
        self, session: Session, rows: list[PlatformKey], new: NewKey, now: datetime
    ) -> None:
        """In the rotation's transaction: wait out a checkpoint being signed, retire old keys."""
        if self.store.db.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHECKPOINT_LOCK})
        assert new.public is not None
        _register(session, Verifier.from_vkey(new.public), now)
        for old in rows:
            if old.retired_at is None:
                self.store.retire(session, old, now)
                if old.public is not None:
                    session.execute(
                        update(AuditKeyRow)
                        .where(AuditKeyRow.vkey == old.public)
                        .values(retired_at=now)
                    )

    def _signer(self, key: PlatformKey) -> Signer:
        if key.hsm_label is not None:
            hsm, label = self.hsm, key.hsm_label
            if hsm is None or key.public is None:
                raise IntegrityFailure("the audit signing key is in an HSM this gateway cannot use")
            public = Verifier.from_vkey(key.public).public_key
            return Signer.in_device(self.origin, public, _hsm_sign(hsm, label, public))
        return Signer.from_seed(self.origin, self.store.open(key))


def _after(start: datetime, days: int) -> datetime | None:
    return start + timedelta(days=days) if days > 0 else None


def _hsm_sign(hsm: Ed25519Keys, label: str, public: bytes) -> Callable[[bytes], bytes]:
    return lambda message: hsm.sign_ed25519(label, public, message)


def _read_seed(path: Path) -> bytes:
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        raise ConfigError(f"{path} is not an audit signing seed; move it away") from None
    if len(seed) != 32:
        raise ConfigError(f"{path} is not an audit signing seed; move it away")
    return seed


def _remove(path: Path) -> None:
    """The data dir keeps no copy of the seed once the database holds it sealed."""
    path.unlink(missing_ok=True)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
