"""Upstream credentials and egress allowlists: tenants no longer name environment variables.

- `upstream_credentials`: platform-registered credentials, a secret sealed
  under the ``_platform`` KEK or the name of an environment variable.  Only
  platform transactions see the table (row-level security with no tenant rule).
- `upstream_credential_grants`: the credentials each tenant's model versions may use.
- `tenant_egress`: each tenant's upstream allowlist (host names, ``*.`` suffixes, CIDRs).
- Both of the latter: a tenant's transaction may read its own rows; only the
  platform writes them (one policy for all commands, platform only, and one
  for SELECT on the tenant's own rows).
- `deployments.api_key_env` becomes `deployments.credential`: each environment
  variable a platform deployment named becomes an env-backed credential of
  the same name.  (Names the platform keeps for itself, like ``BULKHEAD_*``,
  are converted too, so the operator sees them, but the gateway refuses to
  read them: such a deployment fails closed until it is given another one.)
- `model_versions.api_key_env` is dropped: a tenant named it, so it is not
  trusted; a version that relied on it now calls its upstream without a
  credential until it is republished with one the platform allowed.

Revision ID: 0018
Revises: 0017
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
READ_POLICY = "tenant_read"
PLATFORM = "current_setting('app.platform', true) = 'on'"
OWN = "tenant_id = current_setting('app.tenant_id', true)"
_FK = "fk_{table}_credential_upstream_credentials"


def _protect(table: str, *, tenant_reads: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({PLATFORM}) WITH CHECK ({PLATFORM})")
    if tenant_reads:
        op.execute(f"CREATE POLICY {READ_POLICY} ON {table} FOR SELECT USING ({OWN})")


def _tenant_fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey("tenants.id", ondelete="CASCADE", name=f"fk_{table}_tenant_id_tenants")


def _create_tables() -> None:
    op.create_table(
        "upstream_credentials",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("env_name", sa.String(128), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_upstream_credentials"),
        sa.UniqueConstraint("name", name="uq_upstream_credentials_name"),
    )
    _protect("upstream_credentials", tenant_reads=False)
    op.create_table(
        "upstream_credential_grants",
        sa.Column(
            "credential",
            sa.String(128),
            sa.ForeignKey(
                "upstream_credentials.name",
                ondelete="CASCADE",
                name="fk_upstream_credential_grants_credential_upstream_credentials",
            ),
            nullable=False,
        ),
        sa.Column(
            "tenant_id", sa.String(32), _tenant_fk("upstream_credential_grants"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("credential", "tenant_id", name="pk_upstream_credential_grants"),
    )
    op.create_index(
        "ix_upstream_credential_grants_tenant_id", "upstream_credential_grants", ["tenant_id"]
    )
    _protect("upstream_credential_grants", tenant_reads=True)
    op.create_table(
        "tenant_egress",
        sa.Column("tenant_id", sa.String(32), _tenant_fk("tenant_egress"), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant_egress"),
    )
    _protect("tenant_egress", tenant_reads=True)


def _add_credential(table: str, ondelete: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("credential", sa.String(128), nullable=True))
        batch.create_foreign_key(
            _FK.format(table=table),
            "upstream_credentials",
            ["credential"],
            ["name"],
            ondelete=ondelete,
        )


def _convert_env_names() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # The tables force row-level security on their owner too: act as the platform.
        bind.execute(sa.text("SELECT set_config('app.platform', 'on', true)"))
    names = bind.execute(
        sa.text("SELECT DISTINCT api_key_env FROM deployments WHERE api_key_env IS NOT NULL")
    ).scalars()
    insert = sa.text(
        "INSERT INTO upstream_credentials (id, name, source, env_name, sealed, created_at) "
        "VALUES (:id, :name, 'env', :name, NULL, CURRENT_TIMESTAMP)"
    )
    for name in list(names):
        bind.execute(insert, {"id": f"upc_{secrets.token_hex(10)}", "name": name})
    bind.execute(sa.text("UPDATE deployments SET credential = api_key_env"))


def upgrade() -> None:
    _create_tables()
    _add_credential("deployments", "RESTRICT")
    _add_credential("model_versions", "SET NULL")
    _convert_env_names()
    for table in ("deployments", "model_versions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("api_key_env")


def downgrade() -> None:
    bind = op.get_bind()
    for table in ("deployments", "model_versions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("api_key_env", sa.String(128), nullable=True))
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("SELECT set_config('app.platform', 'on', true)"))
    # Only env-backed credentials have a name to go back to; sealed ones are lost.
    bind.execute(
        sa.text(
            "UPDATE deployments SET api_key_env = (SELECT env_name FROM upstream_credentials "
            "WHERE upstream_credentials.name = deployments.credential)"
        )
    )
    for table in ("deployments", "model_versions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_FK.format(table=table), type_="foreignkey")
            batch.drop_column("credential")
    op.drop_table("tenant_egress")
    op.drop_table("upstream_credential_grants")
    op.drop_table("upstream_credentials")
