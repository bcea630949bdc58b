"""The platform's own keys, wired for `app.build`: audit signing key, internal CA, cache salt.

Part of the composition root (only the `app` package imports it): it picks where the
audit key lives (the HSM where the KMS's token makes Ed25519 keys, else a
seed sealed under the ``_platform`` KEK), loads every key from the database
the replicas share (moving in what an older version kept in the data dir),
and hands out what the rest of the gateway needs: the CA, the cache salts,
the key inventory, the scheduled rotations and the on-demand ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bulkhead.audit.keys import AuditKeyring
from bulkhead.audit.sequencer import Sequencer
from bulkhead.crypto import Ed25519Keys, Kms
from bulkhead.identity.ca import PLATFORM_KEY_OWNER, InternalCA
from bulkhead.runtime.salts import CacheSalts
from bulkhead.settings import Settings
from bulkhead.store import Database
from bulkhead.store.ca_keys import CaKeyring
from bulkhead.store.key_status import KeyInventory, client_cert_trust, platform_kek, tenant_keks
from bulkhead.store.key_status import session_keys as session_keys_of
from bulkhead.store.keyring import KeyEvent, TenantKeyring
from bulkhead.store.platform_keys import PlatformKeyStore
from bulkhead.store.salt_keys import SaltKeyring

if TYPE_CHECKING:
    from bulkhead.admin.keys import PlatformRotations

log = logging.getLogger("bulkhead.keys")
Scheduled = Callable[[datetime | None], bool]
"""A scheduled rotation: rotates if its key is due at the given time; whether it did."""
KeyFailure = Callable[[str], None]
"""Told what failed, ``rotation_failed.<name>`` or ``reload_failed.<name>`` (`app.alerts`
alerts and audits it)."""


def _logged_only(name: str) -> None:
    return None


def hsm_signing(kms: Kms) -> Ed25519Keys | None:
    """The KMS's own Ed25519 keys where its token makes them: the audit key then lives there."""
    return kms if isinstance(kms, Ed25519Keys) and kms.ed25519_supported() else None


def kms_name(settings: Settings) -> str:
    return "hsm (pkcs11)" if settings.kms_backend == "pkcs11" else "local KMS"


def rotate_audit_key(keys: AuditKeyring, sequencer: Sequencer) -> str:
    """The privileged route's rotation: the scheduler's path, then a checkpoint at once."""
    signer = keys.rotate(reason="requested")
    sequencer.wake()
    return signer.verifier.vkey


def platform_kek_rotation(keyring: TenantKeyring, days: int) -> Scheduled:
    """The ``_platform`` KEK's scheduled rotation: due like a tenant's, re-wrapping the same way."""

    def rotate_if_due(now: datetime | None = None) -> bool:
        if not keyring.due(PLATFORM_KEY_OWNER, days, now):
            return False
        keyring.rotate(PLATFORM_KEY_OWNER, reason="scheduled")
        return True

    return rotate_if_due


@dataclass(frozen=True, slots=True)
class PlatformKeys:
    """Every key the platform holds for itself, and the keyrings that rotate them."""

    settings: Settings
    keyring: TenantKeyring
    store: PlatformKeyStore
    audit: AuditKeyring
    cas: CaKeyring
    salts: SaltKeyring
    inventory: KeyInventory
    on_failure: KeyFailure = _logged_only

    @classmethod
    def open(
        cls,
        settings: Settings,
        db: Database,
        keyring: TenantKeyring,
        on_event: KeyEvent,
        on_failure: KeyFailure = _logged_only,
    ) -> PlatformKeys:
        """The keyrings (nothing is read yet: `load` does that once the audit log is up)."""
        store = PlatformKeyStore(db, keyring.kms, keyring.ensure)
        audit = AuditKeyring(
            store,
            settings.audit_origin,
            hsm=hsm_signing(keyring.kms),
            rotation_days=settings.audit_key_rotation_days,
            on_event=on_event,
        )
        cas = CaKeyring(
            store,
            settings.trust_domain,
            rotation_days=settings.ca_rotation_days,
            activation=timedelta(seconds=settings.ca_activation_s),
            on_event=on_event,
        )
        days = settings.cache_salt_rotation_days
        salts = SaltKeyring(store, rotation_days=days, on_event=on_event)
        inventory = _inventory(settings, db, keyring, audit, cas, salts)
        return cls(settings, keyring, store, audit, cas, salts, inventory, on_failure)

    def load(self) -> tuple[InternalCA, CacheSalts]:
        """Read (or make) every key; what an older version kept in the data dir moves in."""
        data = self.settings.data_dir
        self.audit.load(data / "audit" / "signing.key")
        return self.cas.load(data / "ca"), self.salts.load(data / "keys" / "cache-salt.key")

    def refresh(self) -> None:
        """Follow a CA version or cache-salt secret another replica stored (each catalog poll).

        A failure keeps what this replica holds: the CA version it issues from
        may be one whose key the others destroyed, so it is alerted, not only
        logged.
        """
        for name, follow in (("ca", self.cas.refresh), ("cache_salt", self.salts.refresh)):
            if not follow():
                self.on_failure(f"reload_failed.{name}")

    def scheduled(self) -> dict[str, Scheduled]:
        """What the maintenance loop rotates once due."""
        days = self.settings.platform_kek_rotation_days
        return {
            "platform_kek": platform_kek_rotation(self.keyring, days),
            "audit_key": self.audit.rotate_if_due,
            "ca": self.cas.rotate_if_due,
            "cache_salt": self.salts.rotate_if_due,
        }

    def rotate_due(self, now: datetime | None = None) -> dict[str, int]:
        """The maintenance loop's run: each key rotated once due, then the key-age gauge.

        One rotation failing (a KMS or database error) does not hold back the
        others; it is logged, reported to `on_failure` (a key past its period
        goes on doing new work: operators must hear of it) and tried again on
        the next run.
        """
        done = {}
        for name, rotate_if_due in self.scheduled().items():
            try:
                done[name] = int(rotate_if_due(now))
            except Exception as exc:
                log.error("scheduled rotation of %s failed: %s", name, type(exc).__name__)
                done[name] = 0
                self.on_failure(f"rotation_failed.{name}")
        self.inventory.table(now)
        return done

    def on_demand(self) -> PlatformRotations:
        """What `POST /admin/v1/keys/{kind}/rotate` runs (the audit key has its own route);
        asked for when the management API is made, at its first call (`app.lazy`)."""
        from bulkhead.admin.keys import PlatformRotations

        keyring = self.keyring
        return PlatformRotations(
            platform_kek=lambda: f"version {keyring.rotate(PLATFORM_KEY_OWNER).status.primary}",
            ca=lambda: f"version {self.cas.rotate().version}",
            cache_salt=lambda: f"version {self.salts.rotate().version}",
            retire_platform_kek=lambda version: keyring.retire(PLATFORM_KEY_OWNER, version),
        )


def _inventory(
    settings: Settings,
    db: Database,
    keyring: TenantKeyring,
    audit: AuditKeyring,
    cas: CaKeyring,
    salts: SaltKeyring,
) -> KeyInventory:
    """Every key the platform holds, tenants' KEKs and session keys included."""
    held_in, days = kms_name(settings), settings.platform_kek_rotation_days
    return KeyInventory(
        (
            tenant_keks(db, keyring, held_in),
            platform_kek(keyring, days, held_in),
            audit.describe,
            cas.describe,
            client_cert_trust(db, cas.describe),
            salts.describe,
            session_keys_of(db),
        )
    )
