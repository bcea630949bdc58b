"""The platform's own keys in the database every replica shares: versioned, sealed, rotated.

One table, `platform_keys`, holds each version of the audit log's signing
key (`audit.keys`), the internal CA (`store.ca_keys`) and the cache-salt
secret (`runtime.salts`).  A secret is sealed with the `BHE1` recipe under
the ``_platform`` pseudo-tenant's KEK, its associated data naming the row
(kind ``platform-key``, the row's id), so a sealed value copied to another
row does not open, a copy of the database without the KMS yields nothing,
and a row whose kind, scope or version no longer match its id opens as
nothing; the tenant keyring re-wraps every row when the ``_platform`` KEK rotates
(the column is declared sealed in the schema).  A key held in the HSM has a
label there instead, and no sealed value at all.

A version is added with a unique (kind, scope, version): of two replicas
rotating at once, one wins and the other reads what it added.  Every change
bumps the catalog version, so each replica reloads the keys within a poll.
Destroying a key clears its sealed value for good (its public part, a
verifier key or a certificate, stays as long as it is trusted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bulkhead.crypto import DecryptionFailed, Kms, decrypt, encrypt
from bulkhead.errors import IntegrityFailure, NotFound
from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from bulkhead.store.db import Database
from bulkhead.store.repo import bump_version
from bulkhead.store.schema import PlatformKeyRow

SEALED_KIND = "platform-key"
log = logging.getLogger("bulkhead.keys")


@dataclass(frozen=True, slots=True)
class PlatformKey:
    """One stored version of a platform key, as read: its secret still sealed."""

    id: str
    kind: str
    scope: str
    version: int
    created_at: datetime
    sealed: bytes | None = field(default=None, repr=False)
    hsm_label: str | None = None
    public: str | None = None
    activates_at: datetime | None = None
    retired_at: datetime | None = None
    trusted_until: datetime | None = None

    @property
    def destroyed(self) -> bool:
        return self.sealed is None and self.hsm_label is None

    def active_from(self) -> datetime:
        return self.activates_at or self.created_at


@dataclass(frozen=True, slots=True)
class NewKey:
    """What a rotation stores: the secret in plaintext (sealed on the way in) or an HSM label."""

    version: int
    created_at: datetime
    secret: bytes | None = field(default=None, repr=False)
    hsm_label: str | None = None
    public: str | None = None
    activates_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key the platform holds, as the key inventory shows it: never its material.

    `state` is what it does now: ``primary`` / ``active`` (does new work),
    ``pending`` (trusted, not yet used), ``unwrap-only`` / ``verify-only`` /
    ``trusted-only`` (only still checks or opens what exists), ``retired``.
    """

    kind: str
    owner: str
    version: int
    state: str
    held_in: str
    created_at: datetime
    next_rotation_at: datetime | None
    protects: str

    @property
    def in_use(self) -> bool:
        """Whether it does new work (the key-age gauge watches these)."""
        return self.state in ("primary", "active")

    def as_json(self, now: datetime) -> dict[str, object]:
        return {
            "kind": self.kind,
            "owner": self.owner,
            "version": self.version,
            "state": self.state,
            "held_in": self.held_in,
            "created_at": self.created_at.isoformat(),
            "age_days": round((now - self.created_at).total_seconds() / 86_400, 1),
            "next_rotation_at": _iso(self.next_rotation_at),
            "protects": self.protects,
        }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def key_id(kind: str, scope: str, version: int) -> str:
    return f"{kind}/{scope}/{version}" if scope else f"{kind}/{version}"


class PlatformKeyStore:
    """Reads, adds and destroys versions of the platform's keys; opens sealed secrets."""

    def __init__(self, db: Database, kms: Kms, ensure_key: Callable[[str], object]):
        self.db, self.kms, self._ensure_key = db, kms, ensure_key
        # Row id -> (sealed value, its secret): a row re-wrapped since is opened again.
        self._opened: dict[str, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "PlatformKeyStore()"

    def rows(self, kind: str, scope: str = "", session: Session | None = None) -> list[PlatformKey]:
        """Every stored version of a key, oldest first."""
        query = (
            select(PlatformKeyRow)
            .where(PlatformKeyRow.kind == kind, PlatformKeyRow.scope == scope)
            .order_by(PlatformKeyRow.version)
        )
        if session is not None:
            found = [_key(r) for r in session.execute(query).scalars()]
        else:
            with self.db.platform_transaction() as own:
                found = [_key(r) for r in own.execute(query).scalars()]
        self._forget(k.id for k in found if k.sealed is None)
        return found

    def every_row(self) -> list[PlatformKey]:
        """Every version of every kind (for the key inventory)."""
        query = select(PlatformKeyRow).order_by(
            PlatformKeyRow.kind, PlatformKeyRow.scope, PlatformKeyRow.version
        )
        with self.db.platform_transaction() as session:
            return [_key(r) for r in session.execute(query).scalars()]

    def newest_version(self, session: Session, kind: str, scope: str = "") -> int | None:
        """The newest version's number, read in the caller's transaction (one small query)."""
        query = select(PlatformKeyRow.version).where(
            PlatformKeyRow.kind == kind, PlatformKeyRow.scope == scope
        )
        found = session.execute(query.order_by(PlatformKeyRow.version.desc()).limit(1)).scalar()
        return None if found is None else int(found)

    def add(
        self,
        kind: str,
        scope: str,
        new: NewKey,
        *,
        also: Callable[[Session], None] | None = None,
    ) -> bool:
        """Store `new`; False where another replica stored that version first.

        `also` runs in the same transaction (e.g. marking the version before
        it retired), after the new row is written.
        """
        row_id = key_id(kind, scope, new.version)
        sealed = None if new.secret is None else self.seal(row_id, new.secret)
        row = PlatformKeyRow(
            id=row_id,
            kind=kind,
            scope=scope,
            version=new.version,
            sealed=sealed,
            hsm_label=new.hsm_label,
            public=new.public,
            created_at=new.created_at,
            activates_at=new.activates_at,
        )
        try:
            with self.db.platform_transaction() as session:
                session.add(row)
                session.flush()
                if also is not None:
                    also(session)
                # Every replica reloads the platform's keys with the catalog.
                bump_version(session)
        except IntegrityError:
            return False
        return True

    def retire(
        self,
        session: Session,
        key: PlatformKey,
        now: datetime,
        *,
        destroy: bool = True,
        trusted_until: datetime | None = None,
    ) -> None:
        """Mark `key` retired in the caller's transaction; with `destroy`, drop its secret."""
        values: dict[str, object] = {"retired_at": now, "trusted_until": trusted_until}
        if destroy:
            values["sealed"] = None
            self._forget((key.id,))
        session.execute(update(PlatformKeyRow).where(PlatformKeyRow.id == key.id).values(values))

    def destroy(self, key: PlatformKey, now: datetime) -> None:
        """Drop a key's sealed secret (it is retired from now on if it was not)."""
        with self.db.platform_transaction() as session:
            session.execute(
                update(PlatformKeyRow)
                .where(PlatformKeyRow.id == key.id)
                .values(sealed=None, retired_at=key.retired_at or now)
            )
            bump_version(session)
        self._forget((key.id,))

    def forget_label(self, key: PlatformKey) -> None:
        """Clear the HSM label of a key whose HSM objects were destroyed."""
        with self.db.platform_transaction() as session:
            session.execute(
                update(PlatformKeyRow).where(PlatformKeyRow.id == key.id).values(hsm_label=None)
            )

    def drop(self, key: PlatformKey) -> None:
        """Delete a row whose public part is trusted no longer."""
        with self.db.platform_transaction() as session:
            session.execute(delete(PlatformKeyRow).where(PlatformKeyRow.id == key.id))
            bump_version(session)

    def seal(self, row_id: str, secret: bytes) -> bytes:
        self._ensure_key(PLATFORM_KEY_OWNER)
        return encrypt(
            secret, tenant_id=PLATFORM_KEY_OWNER, kind=SEALED_KIND, object_id=row_id, kms=self.kms
        )

    def open(self, key: PlatformKey) -> bytes:
        """The plaintext of `key`'s secret, in memory only; `IntegrityFailure` if it won't open."""
        if key.sealed is None:
            raise NotFound("This key's secret was destroyed, or lives in the HSM.")
        if key.id != key_id(key.kind, key.scope, key.version):
            # The sealed value is bound to the id; a row whose kind, scope or version
            # was rewritten around it would open as another key, or a newer version.
            log.error("platform key %s is stored as another key", key.id)
            raise IntegrityFailure(f"the platform key {key.id} is stored as another key")
        with self._lock:
            known = self._opened.get(key.id)
        if known is not None and known[0] == key.sealed:
            return known[1]
        try:
            secret = decrypt(
                key.sealed, tenant_id=PLATFORM_KEY_OWNER, kind=SEALED_KIND, object_id=key.id,
                kms=self.kms,
            )  # fmt: skip
        except (DecryptionFailed, NotFound):
            log.error("platform key %s does not open", key.id)
            raise IntegrityFailure(f"the platform key {key.id} does not open") from None
        with self._lock:
            self._opened[key.id] = (key.sealed, secret)
        return secret

    def _forget(self, ids: Iterable[str]) -> None:
        """A destroyed key's secret leaves this process's memory too."""
        with self._lock:
            for gone in ids:
                self._opened.pop(gone, None)


def _key(row: PlatformKeyRow) -> PlatformKey:
    return PlatformKey(
        id=row.id,
        kind=row.kind,
        scope=row.scope,
        version=row.version,
        created_at=row.created_at,
        sealed=None if row.sealed is None else bytes(row.sealed),
        hsm_label=row.hsm_label,
        public=row.public,
        activates_at=row.activates_at,
        retired_at=row.retired_at,
        trusted_until=row.trusted_until,
    )
