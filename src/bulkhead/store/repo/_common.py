"""What every repository module shares: ids, name rules, the catalog version."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select, text, update
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


# The channel every replica LISTENs on (`store.listen`): its payload is the new version.
CATALOG_CHANNEL = "bulkhead_catalog"


def bump_version(session: Session) -> None:
    """Count a control-plane change; on PostgreSQL, tell every replica when it commits.

    The NOTIFY is part of the writer's transaction, so it is delivered only if
    the change commits, and only after it is visible to a replica's reload.
    """
    bump = update(CatalogVersionRow).values(version=CatalogVersionRow.version + 1)
    if session.get_bind().dialect.name != "postgresql":
        session.execute(bump)
        return
    version = session.execute(bump.returning(CatalogVersionRow.version)).scalar_one()
    session.execute(
        text("SELECT pg_notify(:channel, :version)"),
        {"channel": CATALOG_CHANNEL, "version": str(version)},
    )


def catalog_version(session: Session) -> int:
    return int(session.execute(select(CatalogVersionRow.version)).scalar_one())


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None
