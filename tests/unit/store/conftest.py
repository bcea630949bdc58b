"""A migrated, empty store on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bulkhead.store import Database, upgrade


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    upgrade(database)
    yield database
    database.dispose()
