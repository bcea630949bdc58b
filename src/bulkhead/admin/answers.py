"""Response models of the management answers that `schemas.py` does not hold.

Some handlers build their answers as plain JSON (an audit bundle, a proof, the
key table); their models here describe those answers for /openapi.json, so
every route declares what it answers.  They allow fields beyond the ones
listed where the answer carries a document defined elsewhere (a bundle's
format, a GPU inventory), and list the fields every answer has.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Open(BaseModel):
    """An answer whose documented fields are always there; others may be too."""

    model_config = ConfigDict(extra="allow")


class PrincipalDeleted(BaseModel):
    object: Literal["principal"]
    name: str
    deleted: Literal[True]
    revoked_keys: list[str]


class OperatorDeleted(BaseModel):
    principal: str
    id: str
    deleted: Literal[True]


class AuditEvent(Open):
    """One audit event as the log holds it (`bulkhead.audit.events`)."""


class AuditBundle(Open):
    """A verifiable audit bundle (`bulkhead.audit.bundle`)."""


class AuditProof(Open):
    """An inclusion proof of one event in the newest checkpoint (`bulkhead.audit.export`)."""


class AuditVerifiers(BaseModel):
    origin: str
    verifiers: list[str]


class AuditKeyRotated(BaseModel):
    origin: str
    verifier: str


class KeyTable(BaseModel):
    object: Literal["list"]
    as_of: str
    data: list[dict[str, Any]]


class TrustBundle(BaseModel):
    trust_domain: str
    bundle: str


class KeyRotated(BaseModel):
    kind: str
    rotated: str


class KekVersion(BaseModel):
    version: int
    created_at: str
    retired_at: str | None


class KeyVersions(Open):
    """A KEK's versions (`admin/platform/kms.py` `versions_json`); what a rotation re-wrapped."""

    primary_version: int
    versions: list[KekVersion]


class TenantConfig(Open):
    """A tenant's settings (`bulkhead.domain.TenantConfig.to_json`)."""

    tenant: str


class TenantDeleted(BaseModel):
    tenant: str
    id: str
    deleted: Literal[True]
    keys_destroyed: Literal[True]


class LimitValue(BaseModel):
    value: int | None
    source: Literal["tenant", "tier"]
    tier_default: int | None


class TenantLimits(BaseModel):
    tenant: str
    tier: str
    limits: dict[str, LimitValue]
    limits_fail_open: bool


class KeyLimits(BaseModel):
    key_id: str
    limits: dict[str, int | None]
    platform: dict[str, int | None]


class GuardSettings(BaseModel):
    tenant: str
    guard: dict[str, Any]
    set: list[str]
    platform: list[str]


class AccessRequestOut(Open):
    """A request for privileged access and its decision (`bulkhead.pam`)."""

    object: Literal["access_request"]
    id: str
    action: str
    target: str
    status: str


class ArtifactFile(BaseModel):
    name: str
    bytes: int
    sha256: str


class ArtifactOut(BaseModel):
    object: Literal["model.artifact"]
    id: str
    tenant: str
    model: str
    worker: str
    created_at: str
    files: list[ArtifactFile]


class ClientCertificate(BaseModel):
    tenant: str
    spiffe_id: str
    expires_at: str
    certificate: str
    private_key: str
    ca_certificate: str


class PasswordSetOut(BaseModel):
    principal: str
    password_set: Literal[True]


class GpuInventoryOut(Open):
    """GPUs, MIG mode, GPU and compute instances (`bulkhead.runtime.gpu`)."""

    available: bool
    gpus: list[dict[str, Any]]


class ExchangeInfo(BaseModel):
    id: str
    request_id: str
    model: str
    bytes: int
    created_at: str
    expires_at: str


class Exchange(Open):
    """One retained exchange, decrypted (`bulkhead.store.retention`)."""
