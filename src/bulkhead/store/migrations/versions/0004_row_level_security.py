"""Row-level security on every tenant-owned table (PostgreSQL only; SQLite has none).

A transaction sees a tenant's rows only when `app.tenant_id` names that
tenant (`Database.tenant_transaction`), and every row only when
`app.platform` is 'on' (`Database.platform_transaction`); both are set per
transaction.  The same expression is the WITH CHECK clause, so a tenant's
transaction cannot write a row of another tenant either.  FORCE makes the
policies bind the tables' owner too; superusers and BYPASSRLS roles are
never bound, which is why the application refuses to connect as one.

Per table:

- tenants: RLS on `id`.  A tenant sees its own row; listing and creating
  tenants is platform work.
- principals, api_keys: RLS on `tenant_id`.  Platform principals and keys
  (tenant_id NULL) match no tenant, so they are visible only to the platform,
  which is also what authentication uses, since it must find a key before it
  knows the tenant.
- files: RLS on `tenant_id`.
- model_grants: RLS on `tenant_id`: a tenant sees the grants made to it.
- models: RLS on `owner_tenant_id`.  A tenant sees its private models;
  shared models (owner NULL) are platform rows, and tenants learn of the
  ones granted to them through the catalog snapshot the platform loads.
- deployments: no tenant column of its own; a deployment is visible (and
  writable) exactly when its model is, through a sub-query on `models` that
  is itself subject to that table's policy.
- Not covered: catalog_version (one counter, no tenant data); audit_entries,
  audit_checkpoints, audit_keys (the audit log is the platform's own
  tamper-evident record: the sequencer reads and hashes every entry, and a
  tenant's view of it is filtered by the export code, which shows other
  tenants' entries as leaf hashes alone); alembic_version.

A later table with tenant data needs the same treatment in its own migration;
tests/integration/test_row_level_security.py fails until it has it.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

POLICY = "tenant_isolation"
PLATFORM = "current_setting('app.platform', true) = 'on'"


def _owned_by(column: str) -> str:
    return f"{column} = current_setting('app.tenant_id', true) OR {PLATFORM}"


RULES = {
    "tenants": _owned_by("id"),
    "principals": _owned_by("tenant_id"),
    "api_keys": _owned_by("tenant_id"),
    "files": _owned_by("tenant_id"),
    "model_grants": _owned_by("tenant_id"),
    "models": _owned_by("owner_tenant_id"),
    "deployments": "EXISTS (SELECT 1 FROM models WHERE models.id = deployments.model_id)",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, rule in RULES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({rule}) WITH CHECK ({rule})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in RULES:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
