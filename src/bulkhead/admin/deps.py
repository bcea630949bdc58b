"""What the management handlers work with, set up once by `build_admin`.

Handlers are module-level functions; they reach their dependencies through
`call.services`, a `Services` made once per application, instead of closing
over them.  The optional ones are there only where the gateway has them (a
bare test app has no CA, say); the routes that need one are added to the
router only then, and `need` names the gap if one is reached anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from bulkhead.admin.control import Control
from bulkhead.audit import export
from bulkhead.errors import NotFound
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.passwords import Passwords
from bulkhead.limits.pool import WorkPool
from bulkhead.pam import AccessService
from bulkhead.runtime import WorkerSupervisor
from bulkhead.runtime.egress import EgressPolicy
from bulkhead.runtime.gpu import GpuInventory
from bulkhead.store import Catalog, Database
from bulkhead.store.artifacts import ArtifactService
from bulkhead.store.key_status import KeyInventory
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.retention import RetentionStore
from bulkhead.store.upstreams import CredentialVault

if TYPE_CHECKING:
    from bulkhead.admin.audit import ExportGate
    from bulkhead.admin.keys import PlatformRotations

T = TypeVar("T")


def need(value: T | None, what: str) -> T:
    """An optional service a route needs; its route is not served where it is missing."""
    if value is None:
        raise NotFound(f"This gateway has no {what}.")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    db: Database
    catalog: Catalog
    control: Control
    workers: WorkerSupervisor
    egress: EgressPolicy
    # Where a tenant's IdP may be (`identity/idp_fetch.idp_egress`): checked on IP literals at
    # registration for a clear error; every fetch is checked again at connect time.
    idp_egress: EgressPolicy
    keyring: TenantKeyring
    retention: RetentionStore
    audit_origin: str
    rotate_audit_key: Callable[[], str]
    audit_bundles: ExportGate
    audit_proofs: ExportGate
    proof_cache: export.ProofCache
    policy_checks: asyncio.Semaphore  # tenant policy texts are checked one at a time
    artifact_pulls: ExportGate  # a pull holds a whole model in memory until it is sent
    artifacts: ArtifactService | None = None
    pam: AccessService | None = None
    passwords: Passwords | None = None
    password_pool: WorkPool | None = None
    ca: InternalCA | None = None
    gpu_inventory: Callable[[], GpuInventory] | None = None
    credentials: CredentialVault | None = None
    key_inventory: KeyInventory | None = None
    platform_rotations: PlatformRotations | None = None
