"""Sign-in: tenants' OIDC providers, local passwords with TOTP, and sign-in sessions.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = ("identity_providers", "local_credentials", "sign_in_sessions")


def _tenant_fk(table: str, nullable: bool, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "tenant_id",
        sa.String(32),
        sa.ForeignKey("tenants.id", ondelete="CASCADE", name=f"fk_{table}_tenant_id_tenants"),
        nullable=nullable,
        primary_key=primary_key,
    )


def _principal_fk(table: str, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "principal_id",
        sa.String(32),
        sa.ForeignKey(
            "principals.id", ondelete="CASCADE", name=f"fk_{table}_principal_id_principals"
        ),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "identity_providers",
        _tenant_fk("identity_providers", nullable=False, primary_key=True),
        sa.Column("issuer", sa.String(512), nullable=False),
        sa.Column("audience", sa.String(512), nullable=False),
        sa.Column("jwks_url", sa.Text(), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("require_mfa_for_admin", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("issuer", name="uq_identity_providers_issuer"),
    )
    op.create_table(
        "local_credentials",
        _principal_fk("local_credentials", primary_key=True),
        _tenant_fk("local_credentials", nullable=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(64), nullable=True),
        sa.Column("pending_totp_secret", sa.LargeBinary(64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("recovery_hashes", sa.JSON(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_local_credentials_tenant_id", "local_credentials", ["tenant_id"])
    op.create_table(
        "sign_in_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant_fk("sign_in_sessions", nullable=True),
        _principal_fk("sign_in_sessions"),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("mfa", sa.Boolean(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_sign_in_sessions_tenant_id", "sign_in_sessions", ["tenant_id"])
    op.create_index("ix_sign_in_sessions_principal_id", "sign_in_sessions", ["principal_id"])
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} "
                "USING (tenant_id = current_setting('app.tenant_id', true) "
                "OR current_setting('app.platform', true) = 'on') "
                "WITH CHECK (tenant_id = current_setting('app.tenant_id', true) "
                "OR current_setting('app.platform', true) = 'on')"
            )


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
