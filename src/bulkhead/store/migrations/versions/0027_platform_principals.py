"""Platform principals managed through the API: contact address, disabling, enrolment secrets.

- `principals.email` (a platform principal's contact address) and
  `principals.disabled_at` (a disabled principal's credentials are refused
  everywhere; its keys and sessions were revoked when it was disabled).
- `enrolments`: a new platform principal's one-time enrolment secret, as a
  SHA-256 hash, and the authenticator it began (sealed under the
  ``_platform`` KEK), until it is used or expires.  Only platform transactions
  see the table (row-level security with no tenant rule).

Revision ID: 0027
Revises: 0026
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
PLATFORM = "current_setting('app.platform', true) = 'on'"


def upgrade() -> None:
    with op.batch_alter_table("principals") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "enrolments",
        sa.Column("principal_id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("pending_totp_secret", sa.LargeBinary(), nullable=True),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.id"],
            name="fk_enrolments_principal_id_principals",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("principal_id", name="pk_enrolments"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE enrolments ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE enrolments FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON enrolments USING ({PLATFORM}) WITH CHECK ({PLATFORM})"
        )


def downgrade() -> None:
    op.drop_table("enrolments")
    with op.batch_alter_table("principals") as batch:
        batch.drop_column("disabled_at")
        batch.drop_column("email")
