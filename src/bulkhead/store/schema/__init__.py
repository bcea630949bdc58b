"""SQL tables.  Every tenant-owned row carries `tenant_id`.

The migration in `migrations/versions/` creates exactly these tables; a test
compares the two so they cannot drift apart.

The tables live by area (`catalog`, `records`, `access`, `training`) over `_base`; every name
is imported from here.
"""

from bulkhead.store.schema._base import (
    NAMING,
    SEALED,
    SHARED_SCOPE,
    Base,
    SealedColumn,
    UTCDateTime,
    sealed,
    utcnow,
)
from bulkhead.store.schema.access import (
    AccessRequestRow,
    EnrolmentRow,
    IdentityProviderRow,
    LocalCredentialRow,
    PlatformKeyRow,
    SessionKeyRow,
    SignInSessionRow,
)
from bulkhead.store.schema.catalog import (
    ApiKeyRow,
    CatalogVersionRow,
    DeploymentRow,
    ModelGrantRow,
    ModelRow,
    ModelVersionRow,
    PrincipalRow,
    QuotaRequestRow,
    TenantEgressRow,
    TenantPolicyRow,
    TenantRow,
    UpstreamCredentialGrantRow,
    UpstreamCredentialRow,
)
from bulkhead.store.schema.records import (
    AuditCheckpointRow,
    AuditEntryRow,
    AuditKeyRow,
    FileRow,
    ModelArtifactFileRow,
    RetainedExchangeRow,
    StorageUsageRow,
    UsageHourRow,
)
from bulkhead.store.schema.training import FineTuningEventRow, FineTuningJobRow
from bulkhead.store.schema.vectors import VectorChunkRow, VectorStoreFileRow, VectorStoreRow

__all__ = [
    "NAMING",
    "SEALED",
    "SHARED_SCOPE",
    "AccessRequestRow",
    "ApiKeyRow",
    "AuditCheckpointRow",
    "AuditEntryRow",
    "AuditKeyRow",
    "Base",
    "CatalogVersionRow",
    "DeploymentRow",
    "EnrolmentRow",
    "FileRow",
    "FineTuningEventRow",
    "FineTuningJobRow",
    "IdentityProviderRow",
    "LocalCredentialRow",
    "ModelArtifactFileRow",
    "ModelGrantRow",
    "ModelRow",
    "ModelVersionRow",
    "PlatformKeyRow",
    "PrincipalRow",
    "QuotaRequestRow",
    "RetainedExchangeRow",
    "SealedColumn",
    "SessionKeyRow",
    "SignInSessionRow",
    "StorageUsageRow",
    "TenantEgressRow",
    "TenantPolicyRow",
    "TenantRow",
    "UTCDateTime",
    "UpstreamCredentialGrantRow",
    "UpstreamCredentialRow",
    "UsageHourRow",
    "VectorChunkRow",
    "VectorStoreFileRow",
    "VectorStoreRow",
    "sealed",
    "utcnow",
]
