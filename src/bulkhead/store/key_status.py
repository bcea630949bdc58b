"""The key inventory: one table of every key the platform holds, and the age of the oldest.

Each kind of key describes its own versions (`platform_keys.KeyInfo`): the
tenants' KEKs and the platform's (``_platform``) from the KMS, the session
keys from their table, and the audit signing key, the internal CA and the
cache-salt secret from their keyrings.  There are no per-tenant CAs: tenants'
client certificates come from the internal CA, listed as ``ca``; each tenant
that requires client certificates gets a ``client-cert-ca`` row naming the CA
versions its certificates are checked against, so a CA rotation's reach is
in the table too.

`table` is what `GET /admin/v1/keys` and `bulkhead kms status --all` show;
each call also records, per kind, when the oldest key that still does new
work was made and when the first of them was due for rotation, which
`observe.metrics` turns into ``bulkhead_key_oldest_age_seconds{kind}`` and
``bulkhead_key_rotation_due_timestamp_seconds{kind}`` at each scrape without
touching the KMS.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bulkhead.crypto import TenantKeyStatus
from bulkhead.errors import NotFound
from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from bulkhead.identity.sessions import TTL_S
from bulkhead.store import repo
from bulkhead.store.db import Database
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.platform_keys import SEALED_KIND, KeyInfo
from bulkhead.store.schema import SessionKeyRow, utcnow
from bulkhead.store.sealed import SealedObject
from bulkhead.store.session_keys import ROTATE_AFTER

Describe = Callable[[datetime], list[KeyInfo]]
"""A kind of key's own description of its versions, at a given time."""

TENANT_DATA = "the tenant's files, imported models, retained exchanges and TOTP secrets"


class KeyInventory:
    def __init__(self, sources: Sequence[Describe]):
        self.sources = tuple(sources)
        self._lock = threading.Lock()
        self._oldest: dict[str, datetime] = {}
        self._due: dict[str, datetime] = {}

    def table(self, now: datetime | None = None) -> list[KeyInfo]:
        """Every key, described now; remembers, per kind, the oldest in use and the
        first rotation due among those in use."""
        now = now or utcnow()
        keys = [info for source in self.sources for info in source(now)]
        oldest: dict[str, datetime] = {}
        due: dict[str, datetime] = {}
        for info in keys:
            if not info.in_use:
                continue
            if info.kind not in oldest or info.created_at < oldest[info.kind]:
                oldest[info.kind] = info.created_at
            at = info.next_rotation_at
            if at is not None and (info.kind not in due or at < due[info.kind]):
                due[info.kind] = at
        with self._lock:
            self._oldest, self._due = oldest, due
        return keys

    def oldest_ages(self, now: datetime | None = None) -> dict[str, float]:
        """Seconds since the oldest in-use key of each kind was made, as of the last `table`."""
        now = now or utcnow()
        with self._lock:
            return {kind: (now - made).total_seconds() for kind, made in self._oldest.items()}

    def rotation_due(self) -> dict[str, float]:
        """Per kind, when the first in-use key was due for rotation (Unix time), as of the
        last `table`; kinds whose rotation is off are absent."""
        with self._lock:
            due = dict(self._due)
        return {
            kind: (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
            for kind, at in due.items()
        }


def tenant_keks(db: Database, keyring: TenantKeyring, held_in: str) -> Describe:
    """Each tenant's KEK versions; retired ones (which open nothing) are shown as retired."""

    def describe(now: datetime) -> list[KeyInfo]:
        with db.platform_transaction() as session:
            tenants = repo.list_tenants(session)
        found = []
        for tenant in tenants:
            status = _status(keyring, tenant.id)
            if status is not None:
                days = tenant.config.kek_rotation_days
                found += _kek_infos("tenant-kek", tenant.name, status, days, held_in, TENANT_DATA)
        return found

    return describe


def platform_kek(keyring: TenantKeyring, rotation_days: int, held_in: str) -> Describe:
    """The ``_platform`` KEK, with what each version still wraps, counted by kind."""

    def describe(now: datetime) -> list[KeyInfo]:
        status = _status(keyring, PLATFORM_KEY_OWNER)
        if status is None:
            return []
        kinds = keyring.kinds_in_use(PLATFORM_KEY_OWNER, _platform_kind)
        infos = _kek_infos("platform-kek", "platform", status, rotation_days, held_in, "")
        return [_counted(info, kinds.get(info.version, {})) for info in infos]

    return describe


def client_cert_trust(db: Database, ca: Describe) -> Describe:
    """Per tenant that requires client certificates: the internal CA versions that check them."""

    def describe(now: datetime) -> list[KeyInfo]:
        with db.platform_transaction() as session:
            tenants = [t for t in repo.list_tenants(session) if t.config.require_client_cert]
        versions = [info for info in ca(now) if info.state != "retired"]
        active = next((info for info in versions if info.state == "active"), None)
        if active is None:
            return []
        trusted = ", ".join(str(info.version) for info in versions)
        protects = (
            f"checks the tenant's client certificates against CA version(s) {trusted} "
            "(the internal CA issues them; the tenant has no CA of its own)"
        )
        return [
            KeyInfo(
                "client-cert-ca",
                tenant.name,
                active.version,
                "trusts",
                "internal CA",
                active.created_at,
                active.next_rotation_at,
                protects,
            )
            for tenant in tenants
        ]

    return describe


def session_keys(db: Database) -> Describe:
    """The session keys: the newest signs new session ids, older ones verify live sessions."""

    def describe(now: datetime) -> list[KeyInfo]:
        query = select(SessionKeyRow.version, SessionKeyRow.created_at)
        with db.platform_transaction() as session:
            rows = session.execute(query.order_by(SessionKeyRow.version)).all()
        infos = []
        for index, (version, created_at) in enumerate(rows):
            newest = index == len(rows) - 1
            state = "active" if newest else "verify-only"
            protects = (
                "signs new session ids"
                if newest
                else f"verifies sessions signed with it, for {TTL_S // 60} minutes more at most"
            )
            due = created_at + ROTATE_AFTER if newest else None
            sealed = "sealed (_platform KEK)"
            infos.append(
                KeyInfo(
                    "session-key", "platform", version, state, sealed, created_at, due, protects
                )
            )
        return infos

    return describe


def _status(keyring: TenantKeyring, owner: str) -> TenantKeyStatus | None:
    try:
        return keyring.kms.status(owner)
    except NotFound:
        return None  # no key yet: nothing was ever sealed for it


def _kek_infos(
    kind: str, owner: str, status: TenantKeyStatus, days: int, held_in: str, data: str
) -> list[KeyInfo]:
    infos = []
    for version in status.versions:
        primary = version.version == status.primary
        due = version.created_at + timedelta(days=days) if primary and days > 0 else None
        state = "primary" if primary else "unwrap-only"
        protects = (
            f"wraps the data keys of {data or 'new platform secrets'}"
            if primary
            else "unwraps what was not re-wrapped yet (rotate re-wraps, then retire it)"
        )
        if version.retired_at is not None:
            state, protects = "retired", f"nothing: retired {version.retired_at.isoformat()}"
        infos.append(
            KeyInfo(kind, owner, version.version, state, held_in, version.created_at, due, protects)
        )
    return infos


def _counted(info: KeyInfo, kinds: dict[str, int]) -> KeyInfo:
    """A platform KEK version's description, with the objects it wraps now."""
    if info.state == "retired":
        return info
    listed = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "nothing"
    protects = f"wraps {listed}" if info.state == "primary" else f"still wraps {listed}"
    return dataclasses.replace(info, protects=protects)


def _platform_kind(found: SealedObject) -> str:
    """A row of `platform_keys` counts as the kind of key it is (its id starts with it)."""
    return found.object_id.split("/", 1)[0] if found.kind == SEALED_KIND else found.kind
