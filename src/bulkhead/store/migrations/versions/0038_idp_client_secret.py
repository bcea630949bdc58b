"""A tenant IdP's client secret for the console's OIDC sign-in (issue 20).

Nullable: most IdPs take a public client with PKCE.  The value is sealed
under the tenant's KEK (associated data: kind `idp-client-secret` and the
tenant id), so a copy moved to another row does not open.

Revision ID: 0038
Revises: 0037
"""

import sqlalchemy as sa
from alembic import op

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_providers") as table:
        table.add_column(sa.Column("client_secret", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identity_providers") as table:
        table.drop_column("client_secret")
