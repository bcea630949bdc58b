"""Tenant configuration (retention, KEK rotation period) and retained exchanges.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("config", sa.JSON(), nullable=False, server_default="{}"))
    op.create_table(
        "retained_exchanges",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey(
                "tenants.id", ondelete="CASCADE", name="fk_retained_exchanges_tenant_id_tenants"
            ),
            nullable=False,
        ),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_retained_exchanges_tenant_id", "retained_exchanges", ["tenant_id"])
    op.create_index("ix_retained_exchanges_expires_at", "retained_exchanges", ["expires_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE retained_exchanges ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE retained_exchanges FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON retained_exchanges "
            "USING (tenant_id = current_setting('app.tenant_id', true) "
            "OR current_setting('app.platform', true) = 'on') "
            "WITH CHECK (tenant_id = current_setting('app.tenant_id', true) "
            "OR current_setting('app.platform', true) = 'on')"
        )


def downgrade() -> None:
    op.drop_table("retained_exchanges")
    op.drop_column("tenants", "config")
