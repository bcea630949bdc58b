"""The audit tests' shared fixture: a migrated SQLite store of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.store import Database, upgrade


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(database)
    yield database
    database.dispose()
