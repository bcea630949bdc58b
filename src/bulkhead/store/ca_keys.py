"""The internal CA's versions in the database: shared by replicas, sealed, rotated.

Each version of the CA is a row of `platform_keys` (kind ``ca``, scope the
trust domain): its certificate in the clear, its PKCS#8 key sealed under the
``_platform`` KEK (`store.platform_keys`), so the KEK's rotation re-wraps it
and every replica on the database issues from the same CA.  A CA an older
version kept in the data dir (``ca/ca.pem``, ``ca/ca.key.enc``) is moved in
on the first start and the files removed.

A rotation adds the next version, which every replica trusts within a
catalog poll but which issues only `activation` later: by then every peer
holds it in its trust bundle (local workers get it at once with a fresh
SVID; an upstream's operator installs the bundle from `GET /admin/v1/keys`),
so no handshake meets a certificate its peer does not trust yet.  From its
activation the old version issues nothing; it stays in the bundle until
every leaf it issued has expired (`MAX_LIFETIME` after the activation, at
most), and its key is destroyed by the next maintenance run.  Tenants'
client certificates issued before keep working until they expire.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from sqlalchemy import update
from sqlalchemy.orm import Session

from bulkhead.crypto import EXPORT_KEY_MATERIAL, CertKey, DecryptionFailed, cert_pem, decrypt
from bulkhead.errors import ConfigError
from bulkhead.identity.ca import (
    MAX_LIFETIME,
    PLATFORM_KEY_OWNER,
    SKEW,
    Authority,
    Clock,
    InternalCA,
    new_authority,
)
from bulkhead.store.keyring import KeyEvent
from bulkhead.store.platform_keys import (
    KeyInfo,
    NewKey,
    PlatformKey,
    PlatformKeyStore,
    key_id,
)
from bulkhead.store.schema import PlatformKeyRow, utcnow

KIND = "ca"
DEFAULT_ROTATION_DAYS = 365
DEFAULT_ACTIVATION = timedelta(days=1)
LEGACY_KIND = "ca-key"  # the associated data's kind of a data-dir CA key
log = logging.getLogger("bulkhead.keys")


def _quiet(action: str, owner: str, detail: str) -> None:
    return None


def trusted_until(activates_at: datetime) -> datetime:
    """How long a version stays trusted once the next one issues: its last leaf's lifetime."""
    return activates_at + MAX_LIFETIME + 2 * SKEW


class CaKeyring:
    """Loads, creates and rotates the internal CA; `ca` is the one the gateway uses."""

    def __init__(
        self,
        store: PlatformKeyStore,
        trust_domain: str,
        *,
        rotation_days: int = DEFAULT_ROTATION_DAYS,
        activation: timedelta = DEFAULT_ACTIVATION,
        on_event: KeyEvent | None = None,
        clock: Clock = utcnow,
    ):
        self.store, self.trust_domain = store, trust_domain
        self.rotation_days, self.activation = rotation_days, activation
        self._on_event = on_event or _quiet
        self._clock = clock
        self._lock = threading.Lock()
        self._ca: InternalCA | None = None

    def __repr__(self) -> str:
        return f"CaKeyring(trust_domain={self.trust_domain!r})"

    @property
    def ca(self) -> InternalCA:
        if self._ca is None:
            raise ConfigError("the internal CA is not loaded")
        return self._ca

    def rows(self) -> list[PlatformKey]:
        return self.store.rows(KIND, self.trust_domain)

    def load(self, legacy: Path | None = None) -> InternalCA:
        """The CA, creating its first version (or moving the data dir's in) if none is stored."""
        if not self.rows():
            self._first(legacy)
        elif legacy is not None and (legacy / "ca.pem").exists():
            self._trust_legacy(legacy)
        return self._install()

    def refresh(self) -> bool:
        """Follow a rotation another replica stored; whether it did (failing, keep what is held)."""
        try:
            self._install()
            return True
        except Exception as exc:  # A KMS or database failure of any kind.
            log.error("internal CA not reloaded: %s", type(exc).__name__)
            return False

    def rotate(self, *, reason: str = "requested", now: datetime | None = None) -> PlatformKey:
        """Add the next version: trusted at once, issuing from `activation` on."""
        now = now or self._clock()
        rows = self.rows()
        version = rows[-1].version + 1
        cert, key = new_authority(self.trust_domain, now, version)
        activates_at = now + self.activation
        new = NewKey(
            version,
            now,
            secret=key.reveal_der(EXPORT_KEY_MATERIAL),
            public=cert_pem(cert).decode("ascii"),
            activates_at=activates_at,
        )
        if self.store.add(
            KIND, self.trust_domain, new, also=lambda s: _bound(s, rows, activates_at)
        ):
            detail = f"{reason}: version {version}, issues from {activates_at.isoformat()}"
            self._on_event("ca.rotate", PLATFORM_KEY_OWNER, detail)
        self._install()
        return self.rows()[-1]

    def rotate_if_due(self, now: datetime | None = None) -> bool:
        """Destroy what no longer issues, and rotate once the newest version is old enough."""
        now = now or self._clock()
        self.prune(now)
        if self.rotation_days <= 0:
            return False
        newest = self._newest_issuing()
        if newest is None or newest.created_at + timedelta(days=self.rotation_days) > now:
            return False
        before = self.rows()[-1].id
        return self.rotate(reason="scheduled", now=now).id != before

    def prune(self, now: datetime | None = None) -> None:
        """Destroy the keys of versions a newer active one replaced; drop those trusted no more."""
        now = now or self._clock()
        rows, changed = self.rows(), False
        for index, row in enumerate(rows):
            newer_active = any(r.active_from() <= now for r in rows[index + 1 :] if r.sealed)
            if row.trusted_until is not None and row.trusted_until <= now:
                self.store.drop(row)
                changed = True
            elif newer_active and row.sealed is not None:
                self.store.destroy(row, now)
                self._on_event("ca.destroy", PLATFORM_KEY_OWNER, f"version {row.version} key")
                changed = True
        if changed:
            self._install()

    def describe(self, now: datetime) -> list[KeyInfo]:
        """Every version still trusted, for the key inventory."""
        rows = self.rows()
        issuing = [r for r in rows if r.sealed is not None and r.active_from() <= now]
        current = issuing[-1] if issuing else None
        return [self._info(row, row is current, now) for row in rows]

    def _info(self, row: PlatformKey, current: bool, now: datetime) -> KeyInfo:
        due = None
        if current and self.rotation_days:
            due = row.created_at + timedelta(days=self.rotation_days)
        if current:
            state = "active"
            protects = "issues every SVID (gateway, workers) and tenants' client certificates"
        elif row.sealed is not None and row.active_from() > now:
            state = "pending"
            protects = f"trusted now; issues from {row.active_from().isoformat()}"
        else:
            state = "trusted-only"
            until = row.trusted_until.isoformat() if row.trusted_until else "replaced"
            protects = f"issues nothing; trusted until {until} for what it issued"
        held_in = "sealed (_platform KEK)" if row.sealed is not None else "certificate only"
        owner = f"platform ({self.trust_domain})"
        return KeyInfo(KIND, owner, row.version, state, held_in, row.created_at, due, protects)

    # Internals.

    def _newest_issuing(self) -> PlatformKey | None:
        issuing = [r for r in self.rows() if r.sealed is not None]
        return issuing[-1] if issuing else None

    def _install(self) -> InternalCA:
        now = self._clock()
        live = [r for r in self.rows() if r.trusted_until is None or r.trusted_until > now]
        authorities = [self._authority(r) for r in live]
        bundle = [a.cert for a in authorities if a.cert.not_valid_after_utc > now]
        with self._lock:
            if self._ca is None:
                issuing = next(a for a in reversed(authorities) if a.key is not None)
                assert issuing.key is not None
                self._ca = InternalCA(
                    self.trust_domain, issuing.cert, issuing.key, clock=self._clock
                )
            self._ca.install(authorities, bundle)
            return self._ca

    def _authority(self, row: PlatformKey) -> Authority:
        if row.public is None:
            raise ConfigError(f"the CA version {row.version} has no certificate")
        cert = x509.load_pem_x509_certificate(row.public.encode("ascii"))
        key = CertKey(self.store.open(row)) if row.sealed is not None else None
        return Authority(cert, key, row.activates_at)

    def _first(self, legacy: Path | None) -> None:
        now = self._clock()
        moved = self._read_legacy(legacy) if legacy is not None else None
        cert, key = moved or new_authority(self.trust_domain, now)
        new = NewKey(
            1,
            now,
            secret=key.reveal_der(EXPORT_KEY_MATERIAL),
            public=cert_pem(cert).decode("ascii"),
        )
        if self.store.add(KIND, self.trust_domain, new):
            detail = "moved in from the data dir" if moved else "created"
            self._on_event("ca.create", PLATFORM_KEY_OWNER, f"version 1, {detail}")
        elif moved is not None and legacy is not None:
            self._trust_legacy(legacy)  # another replica's CA was stored first
        if legacy is not None:
            _remove_legacy(legacy)

    def _trust_legacy(self, legacy: Path) -> None:
        """A replica's own old CA: trusted for what it issued, never issuing again."""
        try:
            cert = x509.load_pem_x509_certificate((legacy / "ca.pem").read_bytes())
        except (OSError, ValueError):
            _remove_legacy(legacy)
            return
        rows, now = self.rows(), self._clock()
        if any(r.public == cert_pem(cert).decode("ascii") for r in rows):
            _remove_legacy(legacy)
            return
        new = NewKey(rows[-1].version + 1, now, public=cert_pem(cert).decode("ascii"))
        row_id = key_id(KIND, self.trust_domain, new.version)
        until = now + MAX_LIFETIME + 2 * SKEW
        self.store.add(KIND, self.trust_domain, new, also=lambda s: _trust_for(s, row_id, until))
        _remove_legacy(legacy)

    def _read_legacy(self, legacy: Path) -> tuple[x509.Certificate, CertKey] | None:
        cert_path, key_path = legacy / "ca.pem", legacy / "ca.key.enc"
        if not (cert_path.exists() and key_path.exists()):
            return None
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        try:
            der = decrypt(
                key_path.read_bytes(),
                tenant_id=PLATFORM_KEY_OWNER,
                kind=LEGACY_KIND,
                object_id=self.trust_domain,
                kms=self.store.kms,
            )
        except DecryptionFailed:
            raise ConfigError(f"the KMS does not open the CA key in {key_path}") from None
        return cert, CertKey(der)


def _bound(session: Session, rows: list[PlatformKey], activates_at: datetime) -> None:
    """In the rotation's transaction: the versions before stay trusted until their leaves end."""
    for row in rows:
        if row.trusted_until is None:
            session.execute(
                update(PlatformKeyRow)
                .where(PlatformKeyRow.id == row.id)
                .values(trusted_until=trusted_until(activates_at))
            )


def _trust_for(session: Session, row_id: str, until: datetime) -> None:
    """An old CA that issues no more: trusted until what it issued has expired."""
    session.execute(
        update(PlatformKeyRow)
        .where(PlatformKeyRow.id == row_id)
        .values(trusted_until=until, retired_at=utcnow())
    )


def _remove_legacy(legacy: Path) -> None:
    for name in ("ca.key.enc", "ca.pem"):
        (legacy / name).unlink(missing_ok=True)
