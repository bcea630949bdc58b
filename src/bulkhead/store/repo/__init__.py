"""Repository functions: the only code that reads and writes the control-plane tables.

Every function that touches tenant-owned rows takes the tenant id as a
required argument and puts it in the query; a row of another tenant is
indistinguishable from a missing one (`NotFound`).  Each change bumps the
catalog version so every gateway replica reloads its in-memory catalog.

By resource: `tenants` (and principals), `keys`, `models`; every name is
imported from here (`from bulkhead.store import repo`).
"""

from bulkhead.store.repo._common import (
    CATALOG_CHANNEL,
    MODEL_NAME,
    PRINCIPAL_NAME,
    TENANT_NAME,
    bump_version,
    catalog_version,
    new_id,
)
from bulkhead.store.repo.keys import (
    CreatedKey,
    all_keys,
    create_key,
    key_of,
    key_tenant,
    list_keys,
    revoke_key,
    set_key_limits,
    set_tenant_limits,
)
from bulkhead.store.repo.models import (
    DeploymentSpec,
    ModelListing,
    add_model,
    deployment_of,
    grant_model,
    list_models,
    model_of,
    revoke_grant,
)
from bulkhead.store.repo.tenants import (
    _tenant_row,
    create_principal,
    create_tenant,
    get_principal,
    get_tenant,
    get_tenant_by_id,
    list_principals,
    list_tenants,
    lock_platform_principals,
    lock_tenant,
    principal_of,
    set_tenant_status,
    tenant_of,
    update_tenant,
)

__all__ = [
    "CATALOG_CHANNEL",
    "MODEL_NAME",
    "PRINCIPAL_NAME",
    "TENANT_NAME",
    "CreatedKey",
    "DeploymentSpec",
    "ModelListing",
    "_tenant_row",
    "add_model",
    "all_keys",
    "bump_version",
    "catalog_version",
    "create_key",
    "create_principal",
    "create_tenant",
    "deployment_of",
    "get_principal",
    "get_tenant",
    "get_tenant_by_id",
    "grant_model",
    "key_of",
    "key_tenant",
    "list_keys",
    "list_models",
    "list_principals",
    "list_tenants",
    "lock_platform_principals",
    "lock_tenant",
    "model_of",
    "new_id",
    "principal_of",
    "revoke_grant",
    "revoke_key",
    "set_key_limits",
    "set_tenant_limits",
    "set_tenant_status",
    "tenant_of",
    "update_tenant",
]
