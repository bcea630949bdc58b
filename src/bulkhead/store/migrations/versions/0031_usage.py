"""Durable usage: each tenant's model calls per UTC hour, model, API key and refusal code.

`usage_hours` is written by the audit writer in the same transaction as the
events it counts (`store.usage`), so every replica on the database reports
the same usage and it survives restarts (issue 15).  Tenant-owned, so it gets
0004's row-level security on `tenant_id` (PostgreSQL only); the writer runs
as the platform.

Revision ID: 0031
Revises: 0030
"""

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
RULE = (
    "tenant_id = current_setting('app.tenant_id', true)"
    " OR current_setting('app.platform', true) = 'on'"
)
COUNTS = (
    "requests",
    "successes",
    "errors",
    "refusals",
    "prompt_tokens",
    "completion_tokens",
    "lat_100",
    "lat_250",
    "lat_500",
    "lat_1000",
    "lat_2500",
    "lat_5000",
    "lat_10000",
    "lat_inf",
)


def upgrade() -> None:
    op.create_table(
        "usage_hours",
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey(
                "tenants.id", ondelete="CASCADE", name="fk_usage_hours_tenant_id_tenants"
            ),
            nullable=False,
        ),
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS[:6]),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.Column("latency_ms_max", sa.Float(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS[6:]),
        sa.PrimaryKeyConstraint(
            "tenant_id", "hour", "model", "key_id", "reason", name="pk_usage_hours"
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE usage_hours ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE usage_hours FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON usage_hours USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    op.drop_table("usage_hours")
