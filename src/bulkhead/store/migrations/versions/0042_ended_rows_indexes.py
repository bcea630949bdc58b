"""The times maintenance purges by, indexed: ended keys, retired versions, finished jobs,
decided quota requests.

Every replica's maintenance run (`app/history.py`, every
`BULKHEAD_MAINTENANCE_INTERVAL_S`) looks for rows that ended before the retention:
without these indexes each look read the whole table (up to the per-tenant caps times
the tenants).  With them it reads the old rows alone.  None of these tables is written
on the request path.

Revision ID: 0042
Revises: 0041
"""

from alembic import op

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("api_keys", "expires_at"),
    ("api_keys", "revoked_at"),
    ("model_versions", "retired_at"),
    ("fine_tuning_jobs", "finished_at"),
    ("quota_requests", "decided_at"),
)


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table, column in _COLUMNS:
        op.drop_index(f"ix_{table}_{column}", table)
