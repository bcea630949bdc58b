"""The fine-tuning lease (issue 17): which replica runs a job, until when.

`lease_owner` is the replica's id, `lease_until` when its lease ends unless
renewed, `started_at` when it was claimed (fair share: the tenant served
longest ago goes first); `credential_id` the key that created the job, whose
token budget the training is charged to as well.  The table keeps 0032's
row-level security; the status index serves every replica's poll.

Revision ID: 0034
Revises: 0032
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0032"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs") as table:
        table.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        table.add_column(sa.Column("lease_until", TS, nullable=True))
        table.add_column(sa.Column("started_at", TS, nullable=True))
        table.add_column(sa.Column("credential_id", sa.String(64), nullable=True))
    op.create_index("ix_fine_tuning_jobs_status", "fine_tuning_jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_fine_tuning_jobs_status", "fine_tuning_jobs")
    with op.batch_alter_table("fine_tuning_jobs") as table:
        for column in ("credential_id", "started_at", "lease_until", "lease_owner"):
            table.drop_column(column)
