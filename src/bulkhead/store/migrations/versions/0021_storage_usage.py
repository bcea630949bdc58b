"""Each tenant's stored bytes, one row per tenant: the storage quota's reservation counter.

An upload adds its size to the row with one conditional UPDATE (only while
the sum stays within the quota) in the transaction that records the file, so
concurrent uploads, from one gateway or several on one database, can never
store more than the quota (issue 12, item 23).  The counter starts from the
files already stored.  Tenant-owned, so it gets 0004's row-level security on
`tenant_id` (PostgreSQL only).

Revision ID: 0021
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0017"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
RULE = (
    "tenant_id = current_setting('app.tenant_id', true)"
    " OR current_setting('app.platform', true) = 'on'"
)


def upgrade() -> None:
    op.create_table(
        "storage_usage",
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey(
                "tenants.id", ondelete="CASCADE", name="fk_storage_usage_tenant_id_tenants"
            ),
            nullable=False,
        ),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_storage_usage"),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # `files` has forced row-level security: an owner that is no superuser
        # sees its rows only as the platform (for this transaction alone).
        op.execute("SELECT set_config('app.platform', 'on', true)")
    op.execute(
        "INSERT INTO storage_usage (tenant_id, used_bytes) "
        "SELECT tenant_id, SUM(bytes) FROM files GROUP BY tenant_id"
    )
    if postgresql:
        op.execute("ALTER TABLE storage_usage ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE storage_usage FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON storage_usage USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    op.drop_table("storage_usage")
