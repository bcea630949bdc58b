"""A migrated, empty store on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bulkhead.store import Database, upgrade


@pytest.fixture
def db(db_url: str, db_admin_url: str | None) -> Iterator[Database]:
    database = Database(db_url)
    upgrade(database, db_admin_url)
    yield database
    database.dispose()
