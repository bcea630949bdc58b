"""Vector stores, their files and their sealed chunk segments (issue 18).

All three tables are tenant-owned, so they get 0004's row-level security on
`tenant_id` (PostgreSQL only).  The chunks' text and vectors are sealed under
the tenant's KEK (`vector_store_chunks.sealed`); nothing else here is secret.

Revision ID: 0035
Revises: 0032
"""

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0032"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
RULE = (
    "tenant_id = current_setting('app.tenant_id', true)"
    " OR current_setting('app.platform', true) = 'on'"
)
TS = sa.DateTime(timezone=True)
TABLES = ("vector_stores", "vector_store_files", "vector_store_chunks")


def _tenant(table: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id",
        sa.String(32),
        sa.ForeignKey("tenants.id", ondelete="CASCADE", name=f"fk_{table}_tenant_id_tenants"),
        nullable=False,
    )


def upgrade() -> None:
    # Three tables in one list on purpose: a migration is frozen history, run as written,
    # so it is read top to bottom rather than split into helpers.
    op.create_table(
        "vector_stores",
        sa.Column("id", sa.String(64), nullable=False),
        _tenant("vector_stores"),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=True),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_active_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vector_stores"),
    )
    op.create_index("ix_vector_stores_tenant_id", "vector_stores", ["tenant_id"])
    op.create_table(
        "vector_store_files",
        sa.Column(
            "store_id",
            sa.String(64),
            sa.ForeignKey(
                "vector_stores.id",
                ondelete="CASCADE",
                name="fk_vector_store_files_store_id_vector_stores",
            ),
            nullable=False,
        ),
        sa.Column(
            "file_id",
            sa.String(64),
            sa.ForeignKey(
                "files.id", ondelete="CASCADE", name="fk_vector_store_files_file_id_files"
            ),
            nullable=False,
        ),
        _tenant("vector_store_files"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_message", sa.String(512), nullable=True),
        sa.Column("chunking", sa.Text(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "file_id", name="pk_vector_store_files"),
    )
    op.create_index("ix_vector_store_files_tenant_id", "vector_store_files", ["tenant_id"])
    op.create_index("ix_vector_store_files_file_id", "vector_store_files", ["file_id"])
    op.create_table(
        "vector_store_chunks",
        sa.Column("id", sa.String(128), nullable=False),
        _tenant("vector_store_chunks"),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sealed_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vector_store_chunks"),
        sa.ForeignKeyConstraint(
            ["store_id", "file_id"],
            ["vector_store_files.store_id", "vector_store_files.file_id"],
            ondelete="CASCADE",
            name="fk_vector_store_chunks_store_id_vector_store_files",
        ),
    )
    op.create_index("ix_vector_store_chunks_tenant_id", "vector_store_chunks", ["tenant_id"])
    op.create_index("ix_vector_store_chunks_store_id", "vector_store_chunks", ["store_id"])
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
