"""The keys that sign session ids (`identity.sessions`): in the database, sealed, shared.

Every replica of a platform must verify the ids any other one signs, so the
keys live where all of them already look: the shared database, one row per
version in `session_keys`, each sealed with the `BHE1` recipe under the
``_platform`` pseudo-tenant's KEK (associated data: kind ``session-key`` and
the row's id), as upstream credentials are.  Not a file in the data dir like
the cache salt: that would have to be copied to every replica by hand, and
a replica holding another copy would refuse every session the others signed.
A copy of the database without the KMS yields no key, and the tenant
keyring re-wraps these rows when the ``_platform`` KEK rotates (the column
is declared sealed in the schema).

A rotation bumps the catalog version, and every replica reloads the keys
with each catalog snapshot (`app.build`), so all of them hold a new key within
a poll; it signs only `ACTIVATION` after it was made, and the key before it
verifies for one session lifetime more, so rotating signs no one out.  The
maintenance loop of any replica rotates once the newest key is
`ROTATE_AFTER` old; the unique version makes one of two replicas rotating at
once win.  A rotation drops the versions no live id can need any more.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bulkhead.crypto import DecryptionFailed, Kms, decrypt, encrypt
from bulkhead.errors import IntegrityFailure, NotFound
from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from bulkhead.identity.sessions import KEY_BYTES, SessionKey, SessionKeys
from bulkhead.store.db import Database
from bulkhead.store.keyring import KeyEvent
from bulkhead.store.repo import bump_version
from bulkhead.store.schema import SessionKeyRow, utcnow

KIND = "session-key"
ROTATE_AFTER = timedelta(days=30)
log = logging.getLogger("bulkhead.sessions")


@dataclass(frozen=True, slots=True)
class _Stored:
    id: str
    version: int
    sealed: bytes = field(repr=False)
    created_at: datetime


def _quiet(action: str, owner: str, detail: str) -> None:
    return None


class SessionKeyring:
    """Loads, creates and rotates the session keys; `current()` is what was loaded last."""

    def __init__(
        self,
        db: Database,
        kms: Kms,
        ensure_key: Callable[[str], object],
        *,
        on_event: KeyEvent | None = None,
    ):
        self._db, self._kms, self._ensure_key = db, kms, ensure_key
        self._on_event = on_event or _quiet
        self._lock = threading.Lock()
        self._opened: dict[tuple[str, bytes], bytes] = {}
        self._keys = SessionKeys()

    def __repr__(self) -> str:
        return f"SessionKeyring({self._keys!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("session keys cannot be pickled")

    def current(self) -> SessionKeys:
        return self._keys

    def load(self) -> SessionKeys:
        """Read and open every version (making the first if there is none) and hold them.

        `IntegrityFailure` if there are keys and none opens: no session can be
        signed or verified then, which the operator must hear of at start-up.
        """
        rows = self._rows()
        if not rows:
            self._add(1, utcnow())
            rows = self._rows()
        keys = SessionKeys(self._open_all(rows))
        if not keys.versions:
            raise IntegrityFailure("no session key opens")
        self._keys = keys
        return keys

    def refresh(self) -> None:
        """`load`, for the catalog's reloads, which must not fail because of it.

        A failure keeps the keys held and is logged: ids signed with a key this
        replica could not load are refused here meanwhile (fail closed).
        """
        try:
            self.load()
        except Exception as exc:  # A KMS or database failure of any kind.
            log.error("session keys not reloaded: %s", type(exc).__name__)

    def rotate(self, *, now: datetime | None = None, reason: str = "requested") -> bool:
        """Add the next version, which signs from `ACTIVATION` on, and drop those no id needs.

        False where another replica added that version first (it rotated instead).
        """
        now = now or utcnow()
        held = self.load()
        # The next version after every stored one, opened or not (a damaged row keeps its own).
        version = max(row.version for row in self._rows()) + 1
        still_needed = min(k.version for k in held.accepted(now))
        added = self._add(version, now, drop_below=still_needed)
        if added:
            self._on_event(
                "sessions.key.rotate", PLATFORM_KEY_OWNER, f"{reason}: version {version}"
            )
        self.load()
        return added

    def rotate_if_due(self, now: datetime | None = None) -> bool:
        """Rotate once the newest key is `ROTATE_AFTER` old; whether this call rotated."""
        now = now or utcnow()
        newest = self.load().newest()
        if newest is not None and newest.created_at + ROTATE_AFTER > now:
            return False
        return self.rotate(now=now, reason="scheduled")

    def _rows(self) -> list[_Stored]:
        with self._db.platform_transaction() as session:
            found = session.execute(
                select(
                    SessionKeyRow.id,
                    SessionKeyRow.version,
                    SessionKeyRow.sealed,
                    SessionKeyRow.created_at,
                ).order_by(SessionKeyRow.version)
            )
            return [_Stored(r.id, r.version, bytes(r.sealed), r.created_at) for r in found]

    def _add(self, version: int, now: datetime, *, drop_below: int | None = None) -> bool:
        """Store a new version; False if another replica stored that version first."""
        self._ensure_key(PLATFORM_KEY_OWNER)
        row_id = f"v{version}"
        sealed = encrypt(
            secrets.token_bytes(KEY_BYTES),
            tenant_id=PLATFORM_KEY_OWNER,
            kind=KIND,
            object_id=row_id,
            kms=self._kms,
        )
        try:
            with self._db.platform_transaction() as session:
                session.add(
                    SessionKeyRow(id=row_id, version=version, sealed=sealed, created_at=now)
                )
                session.flush()
                if drop_below is not None:
                    session.execute(delete(SessionKeyRow).where(SessionKeyRow.version < drop_below))
                # Every replica reloads its keys with the catalog, so it holds this one soon.
                bump_version(session)
        except IntegrityError:
            return False  # Another replica added this version; its key is read next.
        return True

    def _open_all(self, rows: list[_Stored]) -> list[SessionKey]:
        opened, keys = {}, []
        for row in rows:
            secret = self._open(row)
            if secret is not None:
                opened[(row.id, row.sealed)] = secret
                keys.append(SessionKey(row.version, row.created_at, secret))
        with self._lock:  # What was opened before and is no longer stored is forgotten.
            self._opened = opened
        return keys

    def _open(self, row: _Stored) -> bytes | None:
        with self._lock:
            known = self._opened.get((row.id, row.sealed))
        if known is not None:
            return known
        try:
            return decrypt(
                row.sealed, tenant_id=PLATFORM_KEY_OWNER, kind=KIND, object_id=row.id,
                kms=self._kms,
            )  # fmt: skip
        except (DecryptionFailed, NotFound):
            # Fail closed: ids signed with it are refused; the operator's log says why.
            log.error("session key version %d does not open", row.version)
            return None
