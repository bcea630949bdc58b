"""Policy attributes of tenants and models, and tenants' own Cedar policies.

Revision ID: 0010
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tenants", sa.Column("attributes", sa.JSON(), nullable=False, server_default="{}")
    )
    op.add_column("models", sa.Column("attributes", sa.JSON(), nullable=False, server_default="{}"))
    op.create_table(
        "tenant_policies",
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey(
                "tenants.id", ondelete="CASCADE", name="fk_tenant_policies_tenant_id_tenants"
            ),
        ),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant_policies"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tenant_policies ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE tenant_policies FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON tenant_policies "
            "USING (tenant_id = current_setting('app.tenant_id', true) "
            "OR current_setting('app.platform', true) = 'on') "
            "WITH CHECK (tenant_id = current_setting('app.tenant_id', true) "
            "OR current_setting('app.platform', true) = 'on')"
        )


def downgrade() -> None:
    op.drop_table("tenant_policies")
    op.drop_column("models", "attributes")
    op.drop_column("tenants", "attributes")
