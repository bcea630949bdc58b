"""Join the identity (0007), PAM (0009) and policy (0010) branches into one head.

Revision ID: 0011
Revises: 0007, 0009, 0010
"""

revision = "0011"
down_revision = ("0007", "0009", "0010")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
