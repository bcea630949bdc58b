"""Platform keys: the audit signing key, the internal CA and the cache-salt secret in the database.

- `platform_keys`: one row per version of each of the platform's own keys
  (`store.platform_keys`), the secret sealed under the ``_platform`` KEK (or
  held in the HSM), so every replica on the database shares them and the
  platform KEK's rotation re-wraps them.  Only platform transactions see the
  table (row-level security with no tenant rule).  The keys that were files
  in the data dir (`audit/signing.key`, `ca/ca.key.enc`, `keys/cache-salt.key`)
  are moved in by the gateway on its first start: there is no KMS inside a
  migration.

Revision ID: 0028
Revises: 0026
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0026"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
PLATFORM = "current_setting('app.platform', true) = 'on'"


def upgrade() -> None:
    op.create_table(
        "platform_keys",
        sa.Column("id", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("hsm_label", sa.String(128), nullable=True),
        sa.Column("public", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activates_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trusted_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_platform_keys"),
        sa.UniqueConstraint("kind", "scope", "version", name="uq_platform_keys_kind"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE platform_keys ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE platform_keys FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON platform_keys USING ({PLATFORM}) WITH CHECK ({PLATFORM})"
        )


def downgrade() -> None:
    op.drop_table("platform_keys")
