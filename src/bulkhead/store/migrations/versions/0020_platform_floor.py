"""The platform floor for key limits, and a tenant's one-time first admin.

- `api_keys.limits_floor`: the key limits the platform set (or that the key
  inherited from the key that minted it).  A tenant's own `limits` only
  tighten them; a call is held to the tighter of the two.  Which of the
  limits stored so far the platform set cannot be told any more, so every
  existing key's limits become its floor: tenants keep them and may tighten
  them further (fail closed).
- `tenants.admin_bootstrapped_at`: when the tenant got its first admin
  credential without a grant (`bulkhead.admin.bootstrap`).  Existing tenants
  were onboarded already: they are marked as of their creation, so every
  later credential inside them needs a grant.

The data updates run with `app.platform` on: FORCE ROW LEVEL SECURITY binds
the tables' owner too (0004).

Revision ID: 0020
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("limits_floor", sa.JSON(), nullable=True))
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("admin_bootstrapped_at", sa.DateTime(timezone=True), nullable=True)
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SELECT set_config('app.platform', 'on', true)")
    op.execute("UPDATE api_keys SET limits_floor = limits WHERE limits IS NOT NULL")
    op.execute("UPDATE tenants SET admin_bootstrapped_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("admin_bootstrapped_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("limits_floor")
