"""Both management APIs put together: every route table, and the router over them.

`build_admin` makes the `Services` the handlers use, once,
and puts the tables together; a table whose service this gateway lacks (no
CA in a bare test app, say) is left out.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from bulkhead import __version__
from bulkhead.admin import audit, guard, limits, policies, quotas, upstreams
from bulkhead.admin import keys as platform_keys
from bulkhead.admin.control import Control
from bulkhead.admin.deps import Services
from bulkhead.admin.openapi import openapi
from bulkhead.admin.platform import (
    access,
    certs,
    gpu_plan,
    gpus,
    identity,
    kms,
    models,
    operators,
    tenants,
    workers,
)
from bulkhead.admin.platform import artifacts as model_artifacts
from bulkhead.admin.platform import attributes as policy_attributes
from bulkhead.admin.platform import keys as tenant_keys
from bulkhead.admin.platform import principals as tenant_principals
from bulkhead.admin.router import Route, Router
from bulkhead.admin.tenant import artifacts as own_artifacts
from bulkhead.admin.tenant import exchanges, profile, versions
from bulkhead.admin.tenant import keys as own_keys
from bulkhead.admin.tenant import principals as own_principals
from bulkhead.audit import export
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.idp_fetch import idp_egress as default_idp_egress
from bulkhead.identity.passwords import Passwords
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

# The route tables every gateway serves, in the order they are matched.
TABLES: tuple[tuple[Route, ...], ...] = (
    tenants.ROUTES,
    tenant_principals.ROUTES,
    tenant_keys.ROUTES,
    models.ROUTES,
    workers.ROUTES,
    gpu_plan.ROUTES,
    profile.ROUTES,
    own_keys.ROUTES,
    own_principals.ROUTES,
    audit.ROUTES,
    kms.ROUTES,
    exchanges.ROUTES,
    policies.ROUTES,
    quotas.ROUTES,
    limits.ROUTES,
    guard.ROUTES,
    versions.ROUTES,
    upstreams.ROUTES,
    policy_attributes.ROUTES,
    operators.ROUTES,
)


# The tables served only where the gateway has their service (`optional_tables`).
OPTIONAL_TABLES: tuple[tuple[Route, ...], ...] = (
    model_artifacts.ROUTES,
    own_artifacts.ROUTES,
    access.ROUTES,
    identity.ROUTES,
    certs.ROUTES,
    gpus.ROUTES,
    platform_keys.ROUTES,
)


def every_route() -> list[Route]:
    """Every management route there is: what a gateway with every service serves."""
    return [r for table in (*TABLES, *OPTIONAL_TABLES) for r in table]


def tenant_id_of(catalog: Catalog, name: str) -> str | None:
    """A tenant's id by its name, for a grant's target."""
    return next((t.id for t in catalog.snapshot.tenants.values() if t.name == name), None)


def optional_tables(services: Services) -> list[tuple[Route, ...]]:
    """The tables of routes whose service this gateway has."""
    s = services
    present = [
        (model_artifacts.ROUTES, s.artifacts is not None),
        (own_artifacts.ROUTES, s.artifacts is not None),
        (access.ROUTES, s.pam is not None),
        (identity.ROUTES, s.passwords is not None),
        (certs.ROUTES, s.ca is not None),
        (gpus.ROUTES, s.gpu_inventory is not None),
        (
            platform_keys.ROUTES,
            None not in (s.key_inventory, s.platform_rotations, s.ca),
        ),
    ]
    return [table for table, here in present if here]


# The OpenAPI document's title.  The document is made when `/openapi.json` is first asked
# for (`gateway.chain.Endpoints`), not at every start-up: some 40 ms of CPU.
TITLE = "Bulkhead management API"


def build_admin(
    *,
    db: Database,
    catalog: Catalog,
    authorizer: Authorizer,
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
    idp_egress: EgressPolicy | None = None,
    key_inventory: KeyInventory | None = None,
    platform_rotations: platform_keys.PlatformRotations | None = None,
) -> tuple[Router, Callable[[], dict[str, Any]]]:
    """The management router for both surfaces, and what makes its OpenAPI document."""
    services = Services(
        db=db,
        catalog=catalog,
        control=Control(db, catalog),
        workers=workers,
        egress=platform_egress or EgressPolicy.platform(),
        idp_egress=idp_egress or default_idp_egress(),
        keyring=keyring,
        retention=retention,
        audit_origin=audit_origin,
        rotate_audit_key=rotate_audit_key,
        audit_bundles=audit.ExportGate(per_caller=1, total=2),
        audit_proofs=audit.ExportGate(per_caller=4, total=16),
        proof_cache=export.ProofCache(db),
        policy_checks=asyncio.Semaphore(1),
        artifact_pulls=audit.ExportGate(per_caller=1, total=2, what="model pulls"),
        artifacts=artifacts,
        pam=pam,
        passwords=passwords,
        password_pool=password_pool,
        ca=ca,
        gpu_inventory=gpu_inventory,
        credentials=credentials,
        key_inventory=key_inventory,
        platform_rotations=platform_rotations,
    )
    all_routes = [r for table in (*TABLES, *optional_tables(services)) for r in table]

    router = Router(
        all_routes,
        authorizer=authorizer,
        access=pam,
        tenant_ids=functools.partial(tenant_id_of, catalog),
        services=services,
        tenant_scope=db.tenant_scope,
    )
    return router, functools.partial(openapi, all_routes, title=TITLE, version=__version__)
