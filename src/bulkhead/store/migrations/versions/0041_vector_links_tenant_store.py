"""The links of a vector store indexed by (tenant, store), not by tenant alone.

Every query of `vector_store_files` names the tenant and the store (a store's file
count and status counts, its list, the per-store cap's count).  With an index on
`tenant_id` alone, SQLite walked every link the tenant holds to count one store's:
about 14 ms of CPU at 100,000 links in ten stores, against 0.4 ms on the store's own
(`bench/vector_link_count.py`).  The composite index serves both, and queries by the
tenant alone use its first column.

Revision ID: 0041
Revises: 0040
"""

from alembic import op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None

_TABLE = "vector_store_files"


def upgrade() -> None:
    op.create_index("ix_vector_store_files_tenant_store", _TABLE, ["tenant_id", "store_id"])
    op.drop_index("ix_vector_store_files_tenant_id", _TABLE)


def downgrade() -> None:
    op.create_index("ix_vector_store_files_tenant_id", _TABLE, ["tenant_id"])
    op.drop_index("ix_vector_store_files_tenant_store", _TABLE)
