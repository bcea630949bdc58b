"""A tenant's keys across all of its encrypted objects: rotation, retirement, shredding.

Every sealed object names its tenant, kind and id in its associated data, so
rotation can re-wrap it without knowing which service wrote it: envelope
ciphertexts (``BHE1``) and streams (``BHS1``) alike through
`crypto.sealed.rewrap_sealed`.  The objects are found through the holders of
`store.sealed`: the blob store (``blobs/<tenant>/<kind>/<id>``, any kind) and
the database columns the schema declares sealed (TOTP secrets).  Rotation
re-wraps, and retirement counts, what every holder keeps, so a version still
wrapping a secret in a row is never retired from under it.  Only the wrapped
data key in each header changes; no object is re-encrypted and readers never
see a half-written one.

Key operations are reported to `on_event` (the composition root turns them
into audit events), so a rotation started by the scheduler is on the record
just like one asked for through the API.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bulkhead.crypto import Kms, TenantKeyStatus
from bulkhead.crypto.sealed import kek_version, rewrap_sealed
from bulkhead.errors import Conflict, IntegrityFailure, NotFound
from bulkhead.store.blobs import BlobStore
from bulkhead.store.sealed import BlobHolder, SealedHolder, SealedObject

log = logging.getLogger("bulkhead.keys")

KeyEvent = Callable[[str, str, str], None]
"""(action, tenant id, detail) of a key operation, for the audit log."""


@dataclass(frozen=True, slots=True)
class Rotation:
    status: TenantKeyStatus
    rewrapped: int
    unreadable: tuple[str, ...]  # "<kind>/<id>" of objects that no longer open


_Found = tuple[SealedHolder, SealedObject]


def _quiet(action: str, tenant_id: str, detail: str) -> None:
    return None


class TenantKeyring:
    def __init__(
        self,
        kms: Kms,
        blobs: BlobStore,
        *,
        holders: Sequence[SealedHolder] = (),
        on_event: KeyEvent | None = None,
        shared_lock: Callable[[str], contextlib.AbstractContextManager[None]] | None = None,
    ):
        """`holders`: where sealed objects are kept besides the blob store (the
        database's sealed columns, `store.sealed.SealedColumns`).  `shared_lock`
        serialises a tenant's first key among the replicas (`Database.lock`):
        the KMS has no compare-and-swap, and two replicas creating it at once
        would each clear the other's key as an orphan."""
        self.kms, self.blobs = kms, blobs
        self.holders: tuple[SealedHolder, ...] = (BlobHolder(blobs), *holders)
        self.on_event = on_event or _quiet
        self._shared_lock = shared_lock or (lambda name: contextlib.nullcontext())
        # One rotation per tenant at a time; reads and writes go on meanwhile.
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, tenant_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(tenant_id, threading.Lock())

    def ensure(self, tenant_id: str) -> TenantKeyStatus:
        """The tenant's KEK status, creating its first KEK when it has none yet."""
        try:
            return self.kms.status(tenant_id)
        except NotFound:
            pass
        with self._lock(tenant_id), self._shared_lock(f"bulkhead/kek-create/{tenant_id}"):
            try:
                return self.kms.status(tenant_id)
            except NotFound:
                created = self.kms.create_tenant(tenant_id)
        self.on_event("kms.create", tenant_id, f"version {created.primary}")
        return created

    def status(self, tenant_id: str) -> TenantKeyStatus:
        return self.ensure(tenant_id)

    def rotate(self, tenant_id: str, *, reason: str = "requested") -> Rotation:
        """Add a KEK version and re-wrap every object's data key under it.

        An object that no longer opens (damaged or tampered with) is left as it
        is and reported: it fails closed on read either way, and must not keep
        the rest of the tenant's objects from moving to the new version.
        """
        self.ensure(tenant_id)
        with self._lock(tenant_id):
            version = self.kms.rotate(tenant_id)
            rewrapped, unreadable = 0, []
            for holder, found in self._objects(tenant_id):
                try:
                    rewrapped += self._rewrap(tenant_id, holder, found)
                except (IntegrityFailure, NotFound):
                    unreadable.append(found.name)
        if unreadable:
            log.warning("rotation left %d object(s) that do not open", len(unreadable))
        self.on_event(
            "kms.rotate",
            tenant_id,
            f"{reason}: version {version}, {rewrapped} re-wrapped, {len(unreadable)} unreadable",
        )
        return Rotation(self.kms.status(tenant_id), rewrapped, tuple(unreadable))

    def _rewrap(self, tenant_id: str, holder: SealedHolder, found: SealedObject) -> int:
        """1 once `found` is re-wrapped under the primary version; 0 if it changed meanwhile."""
        old = found.read()
        fresh = rewrap_sealed(
            old, tenant_id=tenant_id, kind=found.kind, object_id=found.object_id, kms=self.kms
        )
        return int(holder.replace(tenant_id, found, old, fresh))

    def _objects(self, tenant_id: str) -> Iterator[_Found]:
        """Every object sealed under the tenant's KEK, in every holder."""
        for holder in self.holders:
            for found in holder.objects(tenant_id):
                yield holder, found

    def versions_in_use(self, tenant_id: str) -> dict[int, int]:
        """How many readable objects each KEK version still wraps, in every holder."""
        return {v: sum(kinds.values()) for v, kinds in self.kinds_in_use(tenant_id).items()}

    def kinds_in_use(
        self, tenant_id: str, name: Callable[[SealedObject], str] | None = None
    ) -> dict[int, dict[str, int]]:
        """Per KEK version, how many readable objects of each kind (or `name`) it still wraps."""
        counts: dict[int, dict[str, int]] = {}
        for _, found in self._objects(tenant_id):
            try:
                version = kek_version(found.read(), tenant_id)
            except (IntegrityFailure, NotFound):
                continue
            kinds, label = counts.setdefault(version, {}), name(found) if name else found.kind
            kinds[label] = kinds.get(label, 0) + 1
        return counts

    def retire(self, tenant_id: str, version: int) -> TenantKeyStatus:
        """Retire a version: what it still wraps fails closed from now on.

        Refused while objects still use it (rotate first, which re-wraps them),
        so retiring never destroys data by accident.
        """
        with self._lock(tenant_id):
            if version == self.kms.status(tenant_id).primary:
                raise Conflict("The primary key version cannot be retired; rotate first.")
            in_use = self.versions_in_use(tenant_id).get(version, 0)
            if in_use:
                raise Conflict(
                    f"KEK version {version} still wraps {in_use} object(s); rotate first"
                )
            self.kms.retire(tenant_id, version)
        self.on_event("kms.retire", tenant_id, f"version {version}")
        return self.kms.status(tenant_id)

    def shred(self, tenant_id: str) -> None:
        """Crypto-shred: destroy every KEK version, then drop the now-unreadable blobs."""
        with self._lock(tenant_id):
            with contextlib.suppress(NotFound):
                self.kms.destroy(tenant_id)
            self.blobs.drop_tenant(tenant_id)
        self.on_event("kms.destroy", tenant_id, "all versions destroyed")

    def due(self, tenant_id: str, period_days: int, now: datetime | None = None) -> bool:
        """Whether the tenant's primary KEK is older than its rotation period."""
        if period_days <= 0:
            return False
        try:
            status = self.kms.status(tenant_id)
        except NotFound:
            return False  # no key yet: nothing encrypted, nothing to rotate
        primary = next(v for v in status.versions if v.version == status.primary)
        return primary.created_at + timedelta(days=period_days) <= (now or datetime.now(UTC))
