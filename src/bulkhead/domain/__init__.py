"""Pure domain types of Bulkhead: no I/O, no imports from the rest of the package."""

from bulkhead.domain._identity import (
    MFA_AMR,
    MFA_ROLES,
    ROLE_PRECEDENCE,
    ClaimMapping,
    IdpConfig,
    SignedIn,
)
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
    "MFA_AMR",
    "MFA_ROLES",
    "PLATFORM_ROLES",
    "ROLE_PRECEDENCE",
    "TENANT_ROLES",
    "ApiKey",
    "ClaimMapping",
    "Deployment",
    "DeploymentKind",
    "Endpoint",
    "IdpConfig",
    "Model",
    "Principal",
    "PrincipalKind",
    "ResolvedModel",
    "Retention",
    "Role",
    "SignedIn",
    "Tenant",
    "TenantConfig",
    "TenantContext",
    "TenantStatus",
    "Tier",
]
