"""SQL tables.  Every tenant-owned row carries `tenant_id`.

The migration in `migrations/versions/` creates exactly these tables; a test
compares the two so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHARED_SCOPE = "*"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


SEALED = "sealed"
"""The column `info` key of a value sealed under a tenant's KEK (see `store.sealed`)."""


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """How a column's values were sealed: the KEK's owner and the associated data.

    `store.sealed.SealedColumns` finds every column declared this way, so the
    tenant keyring re-wraps it on rotation and counts it before retiring a
    version; a test refuses a binary column that is neither declared sealed
    nor known to hold no secret.
    """

    kind: str  # the object kind in the associated data
    object_id: str  # the column whose value is the object id in the associated data
    # The column naming the tenant (NULL: the platform's KEK); None for a platform
    # table whose every row is sealed under the platform's KEK.
    owner: str | None = "tenant_id"


def sealed(kind: str, object_id: str, *, owner: str | None = "tenant_id") -> dict[str, Any]:
    """`info` for a column sealed with associated data (row's tenant, `kind`, `object_id`)."""
    return {SEALED: SealedColumn(kind, object_id, owner)}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: UTCDateTime}


class TenantRow(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    tier: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    quotas: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Tenant configuration (retention, key rotation; later guards and limits),
    # validated by `bulkhead.domain.TenantConfig` on every write.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Policy attributes (allowed networks, allowed hours, regions): `bulkhead.policy` reads them.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the tenant got its first admin without a grant (`bulkhead.admin.bootstrap`).
    admin_bootstrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PrincipalRow(Base):
    __tablename__ = "principals"
    __table_args__ = (UniqueConstraint("scope", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # `scope` is the tenant id, or "*" for platform principals, so that names
    # are unique per tenant on every backend (NULLs never collide in UNIQUE).
    scope: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    roles: Mapped[list[str]] = mapped_column(JSON)
    # Policy attributes (clearance): `bulkhead.policy` reads them; migration 0014.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A platform principal's contact address and when it was disabled (migration 0027).
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Limits that narrow the tenant's for this key (`bulkhead.limits.policy.KEY_QUOTAS`).
    limits: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    # The limits the platform set (or the minting key passed on): `limits` only tighten them.
    limits_floor: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    name: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("scope", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # `scope` is the owning tenant's id, or "*" for a shared model.
    scope: Mapped[str] = mapped_column(String(32))
    owner_tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    endpoints: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text)
    # Policy attributes (classification, sensitivity, region): `bulkhead.policy` reads them.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UpstreamCredentialRow(Base):
    """A platform-registered credential for upstreams: a sealed secret or an env var's name.

    The platform's own table: tenants never read it (row-level security lets
    only platform transactions in).  `sealed` is the secret envelope-encrypted
    under the ``_platform`` KEK, its associated data naming this row's id
    (`store.upstreams`); it is never returned, logged or audited.
    """

    __tablename__ = "upstream_credentials"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    source: Mapped[str] = mapped_column(String(8))  # "env" | "sealed"
    env_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sealed: Mapped[bytes | None] = mapped_column(
        LargeBinary(), nullable=True, info=sealed("upstream-credential", "id", owner=None)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"UpstreamCredentialRow(name={self.name!r}, source={self.source!r})"


class UpstreamCredentialGrantRow(Base):
    """A credential the platform allowed one tenant's model versions to use."""

    __tablename__ = "upstream_credential_grants"
    credential: Mapped[str] = mapped_column(
        ForeignKey("upstream_credentials.name", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TenantEgressRow(Base):
    """The platform's upstream allowlist for one tenant: host names, ``*.`` suffixes, CIDRs."""

    __tablename__ = "tenant_egress"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    entries: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeploymentRow(Base):
    __tablename__ = "deployments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    base_url: Mapped[str] = mapped_column(Text)
    upstream_model: Mapped[str] = mapped_column(String(256))
    # A platform-registered upstream credential (migration 0018); in use, it cannot go.
    credential: Mapped[str | None] = mapped_column(
        ForeignKey("upstream_credentials.name", ondelete="RESTRICT"), nullable=True
    )
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    timeout_s: Mapped[float] = mapped_column(Float)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)


class ModelGrantRow(Base):
    __tablename__ = "model_grants"
    model_id: Mapped[str] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


Index("ix_model_grants_tenant", ModelGrantRow.tenant_id)


class CatalogVersionRow(Base):
    """One row whose counter every control-plane change bumps, so replicas see it."""

    __tablename__ = "catalog_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class AuditEntryRow(Base):
    """One leaf of the audit Merkle log: the canonical event bytes and their leaf hash.

    `idx` is the leaf index, assigned by the sequencer with no gaps and no
    duplicates; rows are never updated or deleted by the application.
    """

    __tablename__ = "audit_entries"
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # The tenant a platform action acted on: the entry is in that tenant's view too.
    target_tenant_id: Mapped[str | None] = mapped_column(String(32), index=True)
    time: Mapped[float] = mapped_column(Float)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)


class AuditCheckpointRow(Base):
    """A signed checkpoint (C2SP tlog-checkpoint signed note) of the first `size` leaves."""

    __tablename__ = "audit_checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditKeyRow(Base):
    """Public verifier keys of checkpoint signers, kept after rotation so old checkpoints verify."""

    __tablename__ = "audit_keys"
    vkey: Mapped[str] = mapped_column(String(256), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class FileRow(Base):
    """An uploaded file's metadata; its content is an encrypted blob in the blob store."""

    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StorageUsageRow(Base):
    """A tenant's stored file bytes: the counter its storage quota is reserved against.

    Always equal to the sum of the tenant's `files.bytes`: both change in the
    same transaction, and an upload adds to it with a conditional UPDATE that
    cannot pass the quota (`store.files`).
    """

    __tablename__ = "storage_usage"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    used_bytes: Mapped[int] = mapped_column(BigInteger)


class ModelArtifactFileRow(Base):
    """One file of a tenant's imported model; its content is a streaming-AEAD blob.

    The blob's object id is ``<artifact_id>-<seq>`` under kind "model", and its
    SHA-256 (of the plaintext) is checked every time the file is loaded.
    """

    __tablename__ = "model_artifact_files"
    artifact_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RetainedExchangeRow(Base):
    """A retained prompt/response pair (tenants with retention `encrypted` only).

    Only metadata is here; the content is an envelope-encrypted blob of kind
    "exchange", deleted with the row when `expires_at` passes.
    """

    __tablename__ = "retained_exchanges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class TenantPolicyRow(Base):
    """A tenant's own Cedar policies (forbids only), replaced as a set; `version` counts writes."""

    __tablename__ = "tenant_policies"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    policy: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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


class ModelVersionRow(Base):
    """A published version of a tenant's private model, with the deployment that serves it.

    The model's plain name routes to its newest version not retired; `name@version`
    routes to that version.  A retired version stays on the record.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    base_url: Mapped[str] = mapped_column(Text)
    upstream_model: Mapped[str] = mapped_column(String(256))
    # A credential the platform allowed this tenant (`upstream_credential_grants`).
    credential: Mapped[str | None] = mapped_column(
        ForeignKey("upstream_credentials.name", ondelete="SET NULL"), nullable=True
    )
    timeout_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class QuotaRequestRow(Base):
    """A tenant's request to raise one quota, and the platform's decision on it."""

    __tablename__ = "quota_requests"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    quota: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_by: Mapped[str] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
