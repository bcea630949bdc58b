"""Audit entries name the tenant a platform action acted on, so that tenant sees it too.

Revision ID: 0019
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.add_column(sa.Column("target_tenant_id", sa.String(32), nullable=True))
    op.create_index("ix_audit_entries_target_tenant_id", "audit_entries", ["target_tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_target_tenant_id", "audit_entries")
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_column("target_tenant_id")
