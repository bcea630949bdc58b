"""Tenant self-service: model versions and quota-increase requests.

Both tables are tenant-owned, so they get 0004's row-level security on
`tenant_id` (PostgreSQL only), as 0006 does for retained exchanges.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
RULE = (
    "tenant_id = current_setting('app.tenant_id', true)"
    " OR current_setting('app.platform', true) = 'on'"
)


def _tenant_id(table: str) -> sa.Column[str]:
    return sa.Column(
        "tenant_id",
        sa.String(32),
        sa.ForeignKey("tenants.id", ondelete="CASCADE", name=f"fk_{table}_tenant_id_tenants"),
        nullable=False,
    )


def _protect(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({RULE}) WITH CHECK ({RULE})")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(32), nullable=False),
        _tenant_id("model_versions"),
        sa.Column(
            "model_id",
            sa.String(32),
            sa.ForeignKey(
                "models.id", ondelete="CASCADE", name="fk_model_versions_model_id_models"
            ),
            nullable=False,
        ),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("upstream_model", sa.String(256), nullable=False),
        sa.Column("api_key_env", sa.String(128), nullable=True),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id"),
    )
    op.create_index("ix_model_versions_tenant_id", "model_versions", ["tenant_id"])
    op.create_index("ix_model_versions_model_id", "model_versions", ["model_id"])
    _protect("model_versions")

    op.create_table(
        "quota_requests",
        sa.Column("id", sa.String(32), nullable=False),
        _tenant_id("quota_requests"),
        sa.Column("quota", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quota_requests"),
    )
    op.create_index("ix_quota_requests_tenant_id", "quota_requests", ["tenant_id"])
    op.create_index("ix_quota_requests_status", "quota_requests", ["status"])
    _protect("quota_requests")


def downgrade() -> None:
    op.drop_table("quota_requests")
    op.drop_table("model_versions")
