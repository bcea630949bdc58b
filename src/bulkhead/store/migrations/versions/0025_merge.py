"""Join the merged branches (0024) and the platform floor (0020).

Revision ID: 0025
Revises: 0020, 0024
"""

revision = "0025"
down_revision = ("0020", "0024")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
