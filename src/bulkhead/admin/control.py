"""Runs control-plane work off the event loop, and reloads the catalog after changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from bulkhead.store import Catalog, Database

T = TypeVar("T")


class Control:
    def __init__(self, db: Database, catalog: Catalog):
        self.db = db
        self.catalog = catalog

    def _read(self, work: Callable[[Session], T]) -> T:
        with self.db.transaction() as session:
            return work(session)

    def _write(self, work: Callable[[Session], T]) -> T:
        with self.db.transaction() as session:
            result = work(session)
        # Reload before answering, so the change holds for the very next request.
        self.catalog.reload()
        return result

    async def read(self, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._read, work)

    async def write(self, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._write, work)
