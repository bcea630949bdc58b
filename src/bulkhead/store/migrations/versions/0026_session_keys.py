"""Session keys: the platform's keys that sign session ids, sealed under the ``_platform`` KEK.

- `session_keys`: one row per key version (`store.session_keys`).  Only
  platform transactions see the table (row-level security with no tenant
  rule).  The first key is created by the gateway on start-up: there is no
  KMS inside a migration.
- Sessions signed in before this revision carry ids without a tag, which no
  longer parse: each of them is refused from now on (they lasted an hour at
  most), and its holder signs in again.

Revision ID: 0026
Revises: 0025
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
PLATFORM = "current_setting('app.platform', true) = 'on'"


def upgrade() -> None:
    op.create_table(
        "session_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_session_keys"),
        sa.UniqueConstraint("version", name="uq_session_keys_version"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE session_keys ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE session_keys FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON session_keys USING ({PLATFORM}) WITH CHECK ({PLATFORM})"
        )


def downgrade() -> None:
    op.drop_table("session_keys")
