"""Join the upstream credentials (0018), audit target (0019) and storage usage (0021) branches.

Revision ID: 0024
Revises: 0018, 0019, 0021
"""

revision = "0024"
down_revision = ("0018", "0019", "0021")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
