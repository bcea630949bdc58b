"""Join the platform principals (0027) and the platform keys (0028).

Revision ID: 0030
Revises: 0027, 0028
"""

revision = "0030"
down_revision = ("0027", "0028")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
