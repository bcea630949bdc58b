"""When a replica last said it is still ingesting an attached file (issue 18).

A file stays `in_progress` while the replica that took its attach call reads,
embeds and seals it, touching `heartbeat_at` meanwhile; one whose heartbeat
(or, before any, its attach) is older than `store.vectors.STALLED_AFTER_S`
belonged to a replica that stopped, and the maintenance loop fails it.  The
table keeps 0035's row-level security; the status index serves that sweep.

Revision ID: 0037
Revises: 0036
"""

import sqlalchemy as sa
from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vector_store_files") as table:
        table.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_vector_store_files_status", "vector_store_files", ["status"])


def downgrade() -> None:
    op.drop_index("ix_vector_store_files_status", "vector_store_files")
    with op.batch_alter_table("vector_store_files") as table:
        table.drop_column("heartbeat_at")
