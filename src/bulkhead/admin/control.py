"""Runs control-plane work off the event loop, and reloads the catalog after changes.

`read` and `write` are the platform's (/admin/v1, across tenants); the
tenant surface uses `tenant_read` and `tenant_write`, whose transactions see
only that tenant's rows (row-level security on PostgreSQL); its routes run
in the database's tenant scope, where `read` and `write` are refused.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy.orm import Session

from bulkhead.store import Catalog, Database

T = TypeVar("T")


class Control:
    def __init__(self, db: Database, catalog: Catalog):
        self.db = db
        self.catalog = catalog

    def _transaction(self, tenant_id: str | None) -> AbstractContextManager[Session]:
        if tenant_id is None:
            return self.db.platform_transaction()
        return self.db.tenant_transaction(tenant_id)

    def _read(self, tenant_id: str | None, work: Callable[[Session], T]) -> T:
        with self._transaction(tenant_id) as session:
            return work(session)

    def _write(self, tenant_id: str | None, work: Callable[[Session], T]) -> T:
        with self._transaction(tenant_id) as session:
            result = work(session)
        # Reload before answering, so the change holds for the very next request.  The
        # catalog is the platform's own view of every tenant: it loads outside the
        # tenant scope of the request that made the change.
        contextvars.Context().run(self.catalog.reload)
        return result

    async def read(self, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._read, None, work)

    async def write(self, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._write, None, work)

    async def tenant_read(self, tenant_id: str, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._read, tenant_id, work)

    async def tenant_write(self, tenant_id: str, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._write, tenant_id, work)
