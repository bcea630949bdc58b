"""Join the fine-tuning lease (0034) and the vector stores (0035).

Revision ID: 0036
Revises: 0034, 0035
"""

revision = "0036"
down_revision = ("0034", "0035")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
