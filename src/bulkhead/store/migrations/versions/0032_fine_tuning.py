"""Fine-tuning jobs and their events (issue 17).

`fine_tuning_jobs` holds each job's validated request and state;
`fine_tuning_job_events` its events in order.  Both are tenant-owned, so
they get 0004's row-level security on `tenant_id` (PostgreSQL only).

Revision ID: 0032
Revises: 0031
"""

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
RULE = (
    "tenant_id = current_setting('app.tenant_id', true)"
    " OR current_setting('app.platform', true) = 'on'"
)
TS = sa.DateTime(timezone=True)


def _tenant(table: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id",
        sa.String(32),
        sa.ForeignKey("tenants.id", ondelete="CASCADE", name=f"fk_{table}_tenant_id_tenants"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "fine_tuning_jobs",
        sa.Column("id", sa.String(64), nullable=False),
        _tenant("fine_tuning_jobs"),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("training_file", sa.String(64), nullable=False),
        sa.Column("validation_file", sa.String(64), nullable=True),
        sa.Column("suffix", sa.String(64), nullable=True),
        sa.Column("hyper", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("fine_tuned_model", sa.String(255), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.String(512), nullable=True),
        sa.Column("trained_tokens", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fine_tuning_jobs"),
    )
    op.create_index("ix_fine_tuning_jobs_tenant_id", "fine_tuning_jobs", ["tenant_id"])
    op.create_table(
        "fine_tuning_job_events",
        sa.Column("id", sa.String(64), nullable=False),
        _tenant("fine_tuning_job_events"),
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey(
                "fine_tuning_jobs.id",
                ondelete="CASCADE",
                name="fk_fine_tuning_job_events_job_id_fine_tuning_jobs",
            ),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("message", sa.String(512), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("valid_loss", sa.Float(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fine_tuning_job_events"),
    )
    op.create_index("ix_fine_tuning_job_events_tenant_id", "fine_tuning_job_events", ["tenant_id"])
    op.create_index("ix_fine_tuning_job_events_job_id", "fine_tuning_job_events", ["job_id"])
    if op.get_bind().dialect.name == "postgresql":
        for table in ("fine_tuning_jobs", "fine_tuning_job_events"):
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    op.drop_table("fine_tuning_job_events")
    op.drop_table("fine_tuning_jobs")
