"""A checkpoint keeps its tree's compact range, so a starting replica reads no old leaves.

Each replica's sequencer keeps the log's compact range (RFC 9162 §2.1.1: the
roots of the perfect subtrees, one per set bit of the size).  Before this, a
starting replica rebuilt it by reading every leaf hash of the log; now each
checkpoint stores the range it was signed from (`border`, 32 bytes a subtree,
largest first), and a starting sequencer resumes from the newest one and reads
only the leaves after it.  Nullable: checkpoints signed before have none, and a
sequencer that finds none reads the log from its start, as before.

Revision ID: 0039
Revises: 0038
"""

import sqlalchemy as sa
from alembic import op

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as table:
        table.add_column(sa.Column("border", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as table:
        table.drop_column("border")
