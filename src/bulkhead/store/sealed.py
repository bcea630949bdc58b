"""Where a tenant's sealed objects are kept: what the keyring walks to rotate and retire.

Every object sealed under a tenant's KEK must be found by `TenantKeyring`:
rotation re-wraps it under the new version, and retirement refuses a version
that still wraps it.  An object the keyring cannot see keeps its old version
in use, and stops opening for good once that version is retired (issue 12,
item 9: TOTP secrets in database rows).  Two kinds of place hold them, each
behind the same small `SealedHolder` interface:

- `BlobHolder`: the blob store.  Every blob of a tenant, of any kind, sits
  under the tenant's directory and is sealed with (tenant, kind, id), so a
  new kind of blob is covered without being named anywhere.
- `SealedColumns`: database columns declared in the schema with
  `schema.sealed(kind, object_id)`.  They are found from the schema's
  metadata, so declaring a column is all it takes; a test refuses a binary
  column that is neither declared sealed nor known to hold no secret.

A holder lists what it holds under one owner and replaces a value only if it
is still the one that was read (a concurrent write wins over a re-wrap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Column, ColumnElement, Table, false, select, true, update
from sqlalchemy.orm import Session

from bulkhead.crypto.sealed import is_sealed
from bulkhead.errors import NotFound
from bulkhead.identity.ca import PLATFORM_KEY_OWNER
from bulkhead.store.blobs import BlobStore
from bulkhead.store.db import Database
from bulkhead.store.schema import SEALED, Base, SealedColumn


@dataclass(frozen=True, slots=True)
class SealedObject:
    """One sealed value: its associated data's kind and id, and how to read it."""

    kind: str
    object_id: str
    read: Callable[[], bytes]
    place: str = ""  # where it is kept, for the holder's own `replace`

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.object_id}"

    def __repr__(self) -> str:
        return f"SealedObject({self.name!r})"


class SealedHolder(Protocol):
    """A place that keeps objects sealed under tenants' KEKs."""

    def objects(self, owner: str) -> Iterator[SealedObject]:
        """Every object sealed under `owner`'s KEK (a tenant id, or the platform's)."""
        ...

    def replace(self, owner: str, found: SealedObject, old: bytes, fresh: bytes) -> bool:
        """Put `fresh` in place of `old`; False where the object changed or went meanwhile."""
        ...


class BlobHolder:
    """The blob store: `blobs/<tenant>/<kind>/<id>.blob`, sealed with that tenant, kind and id."""

    def __init__(self, blobs: BlobStore):
        self.blobs = blobs

    def objects(self, owner: str) -> Iterator[SealedObject]:
        for kind, object_id in self.blobs.list_all(owner):
            yield SealedObject(kind, object_id, self._reader(owner, kind, object_id))

    def _reader(self, owner: str, kind: str, object_id: str) -> Callable[[], bytes]:
        return lambda: self.blobs.get(owner, kind, object_id)

    def replace(self, owner: str, found: SealedObject, old: bytes, fresh: bytes) -> bool:
        return self.blobs.replace(owner, found.kind, found.object_id, fresh)


@dataclass(frozen=True, slots=True)
class _Declared:
    table: Table
    column: Column[bytes]
    sealing: SealedColumn

    @property
    def place(self) -> str:
        return f"{self.table.name}.{self.column.name}"

    def of_owner(self, owner: str) -> ColumnElement[bool]:
        if self.sealing.owner is None:  # A platform table: every row is the platform's.
            return true() if owner == PLATFORM_KEY_OWNER else false()
        column = self.table.c[self.sealing.owner]
        if owner == PLATFORM_KEY_OWNER:
            return column.is_(None)
        return column == owner


def declared_columns() -> tuple[_Declared, ...]:
    """Every column the schema declares sealed (`schema.sealed`)."""
    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            sealing = column.info.get(SEALED)
            if isinstance(sealing, SealedColumn):
                found.append(_Declared(table, column, sealing))
    return tuple(found)


class SealedColumns:
    """Database columns declared sealed in the schema, read and written under RLS."""

    def __init__(self, db: Database):
        self.db = db
        self.columns = declared_columns()
        self._by_place = {c.place: c for c in self.columns}

    def _transaction(self, owner: str) -> AbstractContextManager[Session]:
        # The platform's own secrets (NULL tenant) are platform rows; a tenant's
        # are read in that tenant's transaction, so RLS still scopes the query.
        if owner == PLATFORM_KEY_OWNER:
            return self.db.platform_transaction()
        return self.db.tenant_transaction(owner)

    def objects(self, owner: str) -> Iterator[SealedObject]:
        found: list[SealedObject] = []
        with self._transaction(owner) as session:
            for declared in self.columns:
                object_id = declared.table.c[declared.sealing.object_id]
                rows = session.execute(
                    select(object_id, declared.column).where(
                        declared.of_owner(owner), declared.column.is_not(None)
                    )
                )
                for key, value in rows:
                    # A legacy plaintext TOTP secret (before migration 0015) is sealed
                    # under nothing: there is no key version to move or count.
                    if is_sealed(value):
                        found.append(_value(declared, str(key), bytes(value)))
        return iter(found)

    def replace(self, owner: str, found: SealedObject, old: bytes, fresh: bytes) -> bool:
        declared = self._by_place.get(found.place)
        if declared is None:
            raise NotFound("no such sealed column")
        object_id = declared.table.c[declared.sealing.object_id]
        with self._transaction(owner) as session:
            changed = session.execute(
                update(declared.table)
                .where(
                    declared.of_owner(owner),
                    object_id == found.object_id,
                    declared.column == old,
                )
                .values({declared.column.name: fresh})
            )
            return bool(getattr(changed, "rowcount", 0) == 1)


def _value(declared: _Declared, object_id: str, value: bytes) -> SealedObject:
    return SealedObject(declared.sealing.kind, object_id, lambda: value, declared.place)
