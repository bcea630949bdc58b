"""What every repository module shares: ids, name rules, the catalog version."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bulkhead.errors import Conflict
from bulkhead.store.schema import (
    CatalogVersionRow,
)

TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
PRINCIPAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def bump_version(session: Session) -> None:
    session.execute(update(CatalogVersionRow).values(version=CatalogVersionRow.version + 1))


def catalog_version(session: Session) -> int:
    return int(session.execute(select(CatalogVersionRow.version)).scalar_one())


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None
