"""Pure domain types of Bulkhead: no I/O, no imports from the rest of the package."""

from bulkhead.domain._models import Deployment, DeploymentKind, Endpoint, Model, ResolvedModel
from bulkhead.domain._tenancy import (
    PLATFORM_ROLES,
    TENANT_ROLES,
    ApiKey,
    Principal,
    PrincipalKind,
    Retention,
    Role,
    Tenant,
    TenantConfig,
    TenantContext,
    TenantStatus,
    Tier,
)

__all__ = [
    "PLATFORM_ROLES",
    "TENANT_ROLES",
    "ApiKey",
    "Deployment",
    "DeploymentKind",
    "Endpoint",
    "Model",
    "Principal",
    "PrincipalKind",
    "ResolvedModel",
    "Retention",
    "Role",
    "Tenant",
    "TenantConfig",
    "TenantContext",
    "TenantStatus",
    "Tier",
]
