"""Access: privileged-access requests, identity providers, local credentials, sign-in
sessions and their keys, enrolments, and the platform's own keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bulkhead.store.schema._base import (
    Base,
    UTCDateTime,
    sealed,
)


class AccessRequestRow(Base):
    """A request for privileged access, and once approved, the time-bound grant it yields.

    The platform's own record: `target_tenant_id` names the tenant the access
    reaches into (for its audit view), but the row belongs to no tenant and
    outlives a deleted one, so it has no foreign key.
    """

    __tablename__ = "access_requests"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    target_tenant_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    requester_id: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    duration_s: Mapped[int] = mapped_column(Integer)
    break_glass: Mapped[bool] = mapped_column(Boolean)
    single_use: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


Index(
    "ix_access_requests_grant",
    AccessRequestRow.requester_id,
    AccessRequestRow.action,
    AccessRequestRow.target,
)
Index("ix_access_requests_status", AccessRequestRow.status)


class IdentityProviderRow(Base):
    """A tenant's OpenID Connect provider; an issuer belongs to one tenant only."""

    __tablename__ = "identity_providers"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(512), unique=True)
    audience: Mapped[str] = mapped_column(String(512))
    jwks_url: Mapped[str] = mapped_column(Text)
    # The claim mapping, validated by `bulkhead.domain.ClaimMapping` on every write.
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    require_mfa_for_admin: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The console's OIDC client secret, for an IdP that wants one at its token endpoint:
    # sealed under the tenant's KEK, opened only for the code exchange (`console/oidc.py`).
    client_secret: Mapped[bytes | None] = mapped_column(
        LargeBinary(), nullable=True, info=sealed("idp-client-secret", "tenant_id")
    )


class LocalCredentialRow(Base):
    """A person's password (Argon2id), TOTP secret and recovery codes (SHA-256).

    `tenant_id` is NULL for platform principals.  The TOTP secret is a shared
    secret: it is never logged, returned or put in an audit event, and it is
    stored envelope-encrypted under the tenant's KEK (`identity.totp_vault`;
    a row from before migration 0015 may still hold a plaintext one).
    """

    __tablename__ = "local_credentials"
    principal_id: Mapped[str] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    password_hash: Mapped[str] = mapped_column(String(256))
    totp_secret: Mapped[bytes | None] = mapped_column(
        LargeBinary(), nullable=True, info=sealed("totp", "principal_id")
    )
    pending_totp_secret: Mapped[bytes | None] = mapped_column(
        LargeBinary(), nullable=True, info=sealed("totp", "principal_id")
    )
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    recovery_hashes: Mapped[list[str]] = mapped_column(JSON)
    failed_attempts: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"LocalCredentialRow(principal_id={self.principal_id!r})"


class SignInSessionRow(Base):
    """A sign-in session; only the SHA-256 of its token is kept."""

    __tablename__ = "sign_in_sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    principal_id: Mapped[str] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(32))
    mfa: Mapped[bool] = mapped_column(Boolean)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SessionKeyRow(Base):
    """A version of the key that signs session ids (`identity.sessions`), shared by replicas.

    The platform's own table (row-level security lets only platform
    transactions in).  `sealed` is the key envelope-encrypted under the
    ``_platform`` KEK, its associated data naming this row's id; a unique
    `version` lets one of two replicas rotating at once win.
    """

    __tablename__ = "session_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    sealed: Mapped[bytes] = mapped_column(
        LargeBinary(), info=sealed("session-key", "id", owner=None)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"SessionKeyRow(version={self.version!r})"


class EnrolmentRow(Base):
    """A new platform principal's one-time enrolment secret, until it is used or expires.

    The platform's own table (row-level security lets only platform
    transactions in).  Only the SHA-256 of the secret is kept: the secret
    carries 256 random bits, so there is nothing to brute-force
    (`identity.enrolment`).  Using it deletes the row, in the transaction that
    sets the principal's password and makes its authenticator its own.
    """

    __tablename__ = "enrolments"
    principal_id: Mapped[str] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True
    )
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    # The authenticator the enrolment began, sealed like every platform TOTP secret
    # (`identity.totp_vault`); it moves to the credential when the enrolment is confirmed.
    pending_totp_secret: Mapped[bytes | None] = mapped_column(
        LargeBinary(), nullable=True, info=sealed("totp", "principal_id", owner=None)
    )
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"EnrolmentRow(principal_id={self.principal_id!r})"


class PlatformKeyRow(Base):
    """A version of one of the platform's own keys: audit signing, internal CA, cache salt.

    The platform's own table (row-level security lets only platform
    transactions in).  `sealed` is the secret (an Ed25519 seed, a CA's PKCS#8
    key, a salt secret) envelope-encrypted under the ``_platform`` KEK, its
    associated data naming this row's id; NULL once the key is destroyed, or
    for a key held in the HSM (`hsm_label`).  `public` is what anyone may see
    (a verifier key, a certificate).  A unique (kind, scope, version) lets
    one of two replicas rotating at once win.
    """

    __tablename__ = "platform_keys"
    __table_args__ = (UniqueConstraint("kind", "scope", "version"),)
    id: Mapped[str] = mapped_column(String(320), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    sealed: Mapped[bytes | None] = mapped_column(
        LargeBinary(), nullable=True, info=sealed("platform-key", "id", owner=None)
    )
    hsm_label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    public: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When it starts doing its work (a CA issues from then on); NULL: at once.
    activates_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When it stopped (its secret destroyed), and until when its public part is trusted.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    trusted_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def __repr__(self) -> str:
        return f"PlatformKeyRow(id={self.id!r})"
