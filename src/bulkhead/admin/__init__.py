"""The platform (/admin/v1) and tenant self-service (/tenant/v1) APIs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulkhead import __version__
from bulkhead.admin import (
    access,
    audit,
    gpus,
    guard,
    identity,
    kms,
    limits,
    platform,
    policies,
    principals,
    quotas,
    retained,
    tenant,
    upstreams,
    versions,
)
from bulkhead.admin import artifacts as model_artifacts
from bulkhead.admin import attributes as policy_attributes
from bulkhead.admin import certs as client_certs
from bulkhead.admin import keys as platform_keys
from bulkhead.admin.control import Control
from bulkhead.admin.router import Route, Router, openapi
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.passwords import Passwords
from bulkhead.limits import UsageLedger
from bulkhead.limits.pool import WorkPool
from bulkhead.pam import AccessService
from bulkhead.policy import Authorizer
from bulkhead.runtime import WorkerSupervisor
from bulkhead.runtime.egress import EgressPolicy
from bulkhead.runtime.gpu import GpuInventory
from bulkhead.store import Catalog, Database
from bulkhead.store.artifacts import ArtifactService
from bulkhead.store.key_status import KeyInventory
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.retention import RetentionStore
from bulkhead.store.upstreams import CredentialVault


def build_admin(
    *,
    db: Database,
    catalog: Catalog,
    authorizer: Authorizer,
    ledger: UsageLedger,
    workers: WorkerSupervisor,
    audit_origin: str,
    rotate_audit_key: Callable[[], str],
    keyring: TenantKeyring,
    retention: RetentionStore,
    artifacts: ArtifactService | None = None,
    pam: AccessService | None = None,
    passwords: Passwords | None = None,
    password_pool: WorkPool | None = None,
    ca: InternalCA | None = None,
    gpu_inventory: Callable[[], GpuInventory] | None = None,
    credentials: CredentialVault | None = None,
    platform_egress: EgressPolicy | None = None,
    key_inventory: KeyInventory | None = None,
    platform_rotations: platform_keys.PlatformRotations | None = None,
) -> tuple[Router, dict[str, Any]]:
    """The management router for both surfaces, and its OpenAPI document."""
    control = Control(db, catalog)
    all_routes: list[Route] = [
        *platform.routes(control, workers, platform_egress or EgressPolicy.platform()),
        *tenant.routes(control, ledger),
        *audit.routes(db, audit_origin, rotate_audit_key),
        *kms.routes(control, keyring),
        *retained.routes(retention),
        *policies.routes(control),
        *quotas.tenant_routes(control),
        *limits.platform_routes(control),
        *limits.tenant_routes(control),
        *guard.platform_routes(control),
        *guard.tenant_routes(control),
        *quotas.platform_routes(control),
        *versions.routes(control),
        *upstreams.routes(control, credentials),
        *policy_attributes.routes(control),
        *principals.routes(control),
        *(model_artifacts.routes(control, artifacts) if artifacts is not None else ()),
        *(access.routes(pam) if pam is not None else ()),
        *(identity.routes(control, passwords, password_pool) if passwords is not None else ()),
        *(client_certs.routes(control, ca) if ca is not None else ()),
        *(gpus.routes(gpu_inventory) if gpu_inventory is not None else ()),
        *platform_keys.routes(key_inventory, platform_rotations, ca),
    ]

    def tenant_ids(name: str) -> str | None:
        return next((t.id for t in catalog.snapshot.tenants.values() if t.name == name), None)

    router = Router(
        all_routes,
        authorizer=authorizer,
        access=pam,
        tenant_ids=tenant_ids,
        tenant_scope=db.tenant_scope,
    )
    return router, openapi(all_routes, title="Bulkhead management API", version=__version__)


__all__ = ["Router", "build_admin"]
