"""The catalog's tables: tenants, principals, keys, models and their deployments, versions,
grants, upstream credentials, egress, policies and quota requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
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
    # Indexed for maintenance's purge of ended keys (0042), as the other ended rows' times.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
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


class TenantPolicyRow(Base):
    """A tenant's own Cedar policies (forbids only), replaced as a set; `version` counts writes."""

    __tablename__ = "tenant_policies"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    policy: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)


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
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
