"""The secret of the tenants' vLLM cache salts (`runtime.salts`): in the database, sealed, rotated.

It lives in `platform_keys` (kind ``cache-salt``), sealed under the
``_platform`` KEK like the platform's other keys, so every replica on the
database sends a tenant the same salt (a file per replica would split a
shared vLLM's prefix cache between replicas, and leave a plaintext secret
in every data dir), and the KEK's rotation re-wraps it.  A secret an older
version kept in the data dir (``keys/cache-salt.key``) is moved in on the
first start, the file removed and the secret rotated at once: one that lay
in plaintext on disk salts nothing.

It rotates (`BULKHEAD_CACHE_SALT_ROTATION_DAYS`, default 90): what it
protects is the unguessability of each tenant's salt, and a rotation costs
one cold prefix cache per tenant, nothing else.  The old secret is destroyed
at once; replicas follow within a catalog poll, and until they do the two
salts only miss each other's cache entries.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from bulkhead.errors import ConfigError
from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from bulkhead.runtime.salts import CacheSalts
from bulkhead.store.keyring import KeyEvent
from bulkhead.store.platform_keys import KeyInfo, NewKey, PlatformKey, PlatformKeyStore
from bulkhead.store.schema import utcnow

KIND = "cache-salt"
DEFAULT_ROTATION_DAYS = 90
SECRET_BYTES = 32
log = logging.getLogger("bulkhead.keys")


def _quiet(action: str, owner: str, detail: str) -> None:
    return None


class SaltKeyring:
    """Loads, creates and rotates the cache-salt secret; `salts` is what the gateway uses."""

    def __init__(
        self,
        store: PlatformKeyStore,
        *,
        rotation_days: int = DEFAULT_ROTATION_DAYS,
        on_event: KeyEvent | None = None,
    ):
        self.store, self.rotation_days = store, rotation_days
        self._on_event = on_event or _quiet
        self._salts: CacheSalts | None = None

    def __repr__(self) -> str:
        return "SaltKeyring()"

    @property
    def salts(self) -> CacheSalts:
        if self._salts is None:
            raise ConfigError("the cache-salt secret is not loaded")
        return self._salts

    def rows(self) -> list[PlatformKey]:
        return self.store.rows(KIND)

    def load(self, legacy: Path | None = None, *, now: datetime | None = None) -> CacheSalts:
        """The salts under the newest secret; the first is made, or moved in from `legacy`."""
        if not self.rows():
            secret = _read(legacy) if legacy is not None and legacy.exists() else None
            added = self.store.add(KIND, "", NewKey(1, now or utcnow(), secret=secret or _fresh()))
            if added:
                detail = "moved in from the data dir" if secret else "created"
                self._on_event("cache_salt.create", PLATFORM_KEY_OWNER, f"version 1, {detail}")
            if added and secret:
                # It lay in plaintext in the data dir: it salts nothing from now on.
                self.rotate(reason="the data dir's secret was in plaintext", now=now)
        if legacy is not None:
            legacy.unlink(missing_ok=True)
        return self._install()

    def refresh(self) -> bool:
        """Follow a rotation another replica stored; whether it did (a failure keeps the secret)."""
        try:
            self._install()
            return True
        except Exception as exc:  # A KMS or database failure of any kind.
            log.error("cache-salt secret not reloaded: %s", type(exc).__name__)
            return False

    def rotate(self, *, reason: str = "requested", now: datetime | None = None) -> PlatformKey:
        """A new secret from now on; the old one is destroyed."""
        now = now or utcnow()
        rows = self.rows()
        version = rows[-1].version + 1

        def retire_older(session: Session) -> None:
            for row in rows:
                if row.retired_at is None:
                    self.store.retire(session, row, now)

        if self.store.add(KIND, "", NewKey(version, now, secret=_fresh()), also=retire_older):
            self._on_event("cache_salt.rotate", PLATFORM_KEY_OWNER, f"{reason}: version {version}")
        self._install()
        return self.rows()[-1]

    def rotate_if_due(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        rows = self.rows()
        if self.rotation_days <= 0 or not rows:
            return False
        if rows[-1].created_at + timedelta(days=self.rotation_days) > now:
            return False
        return self.rotate(reason="scheduled", now=now).id != rows[-1].id

    def describe(self, now: datetime) -> list[KeyInfo]:
        """The live secret, for the key inventory (destroyed ones are gone for good)."""
        live = [r for r in self.rows() if r.sealed is not None]
        return [
            KeyInfo(
                KIND,
                "platform",
                row.version,
                "active",
                "sealed (_platform KEK)",
                row.created_at,
                row.created_at + timedelta(days=self.rotation_days) if self.rotation_days else None,
                "each tenant's vLLM cache_salt (prefix caches never shared across tenants)",
            )
            for row in live[-1:]
        ]

    def _install(self) -> CacheSalts:
        live = [r for r in self.rows() if r.sealed is not None]
        if not live:
            raise ConfigError("no cache-salt secret is stored")
        secret = self.store.open(live[-1])
        if self._salts is None:
            self._salts = CacheSalts(secret)
        else:
            self._salts.install(secret)
        return self._salts


def _fresh() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def _read(path: Path) -> bytes:
    try:
        secret = path.read_bytes()
    except OSError:
        raise ConfigError(f"{path} cannot be read; move it away") from None
    if len(secret) < SECRET_BYTES:
        raise ConfigError(f"{path} is not a cache-salt secret; move it away")
    return secret
