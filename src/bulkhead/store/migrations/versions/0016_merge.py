"""Join the self-service (0012), attributes (0014) and encrypted-TOTP (0015) branches.

Revision ID: 0016
Revises: 0012, 0014, 0015
"""

revision = "0016"
down_revision = ("0012", "0014", "0015")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
