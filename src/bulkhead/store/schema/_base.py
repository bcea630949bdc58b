"""The schema's foundations: naming, the UTC column type, sealed columns, `Base`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    MetaData,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHARED_SCOPE = "*"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


SEALED = "sealed"
"""The column `info` key of a value sealed under a tenant's KEK (see `store.sealed`)."""


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """How a column's values were sealed: the KEK's owner and the associated data.

    `store.sealed.SealedColumns` finds every column declared this way, so the
    tenant keyring re-wraps it on rotation and counts it before retiring a
    version; a test refuses a binary column that is neither declared sealed
    nor known to hold no secret.
    """

    kind: str  # the object kind in the associated data
    object_id: str  # the column whose value is the object id in the associated data
    # The column naming the tenant (NULL: the platform's KEK); None for a platform
    # table whose every row is sealed under the platform's KEK.
    owner: str | None = "tenant_id"


def sealed(kind: str, object_id: str, *, owner: str | None = "tenant_id") -> dict[str, Any]:
    """`info` for a column sealed with associated data (row's tenant, `kind`, `object_id`)."""
    return {SEALED: SealedColumn(kind, object_id, owner)}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: UTCDateTime}
