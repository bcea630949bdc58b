"""TOTP secrets are stored envelope-encrypted: their columns become unbounded binary.

A sealed secret (``BHE1`` header, wrapped data key, nonce, tag) is longer
than the 64 bytes the plaintext column allowed, and its length depends on
the KMS backend's wrapped-key format, so the columns lose their bound.

This is a schema change only.  Sealing needs the KMS, which a migration does
not have, so rows that hold a plaintext secret are left as they are: the
application recognises one (20 bytes, no ``BHE1`` magic) and seals it on the
principal's next successful TOTP verification (`identity.totp_vault`).  An
operator who wants no plaintext left at once can have those principals
re-enroll instead.  On SQLite the declared length was never enforced and the
type stays BLOB; on PostgreSQL both types are ``bytea``, so nothing is rewritten.

Revision ID: 0015
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0011"
branch_labels = None
depends_on = None

_COLUMNS = ("totp_secret", "pending_totp_secret")


def _retype(old: sa.LargeBinary, new: sa.LargeBinary) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps BLOB either way; recreating the table would gain nothing.
    for column in _COLUMNS:
        op.alter_column(
            "local_credentials", column, type_=new, existing_type=old, existing_nullable=True
        )


def upgrade() -> None:
    _retype(sa.LargeBinary(64), sa.LargeBinary())


def downgrade() -> None:
    # A sealed secret does not fit the old bound: downgrading would lose it silently.
    raise NotImplementedError("0015 cannot be downgraded: sealed TOTP secrets exceed 64 bytes")
