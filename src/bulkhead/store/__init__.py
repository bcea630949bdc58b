"""Control-plane storage: SQL tables, migrations, repositories and the data-plane catalog."""

from bulkhead.store.bounds import TenantBounds
from bulkhead.store.catalog import Catalog, Snapshot
from bulkhead.store.db import Database
from bulkhead.store.migrate import upgrade

__all__ = ["Catalog", "Database", "Snapshot", "TenantBounds", "upgrade"]
