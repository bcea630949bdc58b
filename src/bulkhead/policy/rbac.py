"""The action registry and the `Authorizer` protocol.

Actions are named `<surface>:<operation>`: `v1:` for the OpenAI-compatible
API, `admin:` for the platform API, `tenant:` for tenant self-service,
`console:` for the web console's own pages and session (what a page shows
comes from the platform and tenant APIs, each judged by its own action).  Add a
new action to its set here; the Cedar layer (`cedar.py`) puts it into its
groups by name (surface; `.list`/`.get` are reads; a `v1:` action without a
dot invokes a model), and the platform policies grant and forbid by group.
An action missing from this registry is denied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bulkhead.domain import TenantContext

V1 = frozenset(
    {
        "v1:chat",
        "v1:completions",
        "v1:embeddings",
        "v1:models.list",
        "v1:models.delete",
        "v1:files.create",
        "v1:files.list",
        "v1:files.get",
        "v1:files.content",
        "v1:files.delete",
        "v1:fine_tuning.jobs.create",
        "v1:fine_tuning.jobs.list",
        "v1:fine_tuning.jobs.get",
        "v1:fine_tuning.jobs.cancel",
        "v1:fine_tuning.jobs.events.list",
        "v1:fine_tuning.jobs.checkpoints.list",
        "v1:vector_stores.create",
        "v1:vector_stores.list",
        "v1:vector_stores.get",
        "v1:vector_stores.update",
        "v1:vector_stores.delete",
        "v1:vector_stores.search",
        "v1:vector_stores.files.create",
        "v1:vector_stores.files.list",
        "v1:vector_stores.files.get",
        "v1:vector_stores.files.delete",
    }
)
ADMIN = frozenset(
    {
        "admin:tenants.create",
        "admin:tenants.list",
        "admin:tenants.get",
        "admin:tenants.update",
        "admin:principals.create",
        "admin:principals.list",
        "admin:keys.create",
        "admin:keys.list",
        "admin:keys.revoke",
        "admin:models.create",
        "admin:models.list",
        "admin:models.grant",
        "admin:models.revoke_grant",
        "admin:models.import",
        "admin:workers.list",
        "admin:gpus.list",
        "admin:gpus.plan",
        "admin:audit.list",
        "admin:audit.export.get",
        "admin:audit.proof.get",
        "admin:audit.keys.list",
        "admin:audit.keys.rotate",
        "admin:kms.get",
        "admin:kms.rotate",
        "admin:kms.retire",
        "admin:kms.list",
        "admin:kms.platform.rotate",
        "admin:kms.platform.retire",
        "admin:kms.ca.rotate",
        "admin:tenants.configure",
        "admin:tenants.delete",
        "admin:tenants.client_cert",
        "admin:policies.list",
        "admin:policies.update",
        "admin:policies.delete",
        "admin:access.create",
        "admin:access.list",
        "admin:access.get",
        "admin:access.approve",
        "admin:access.deny",
        "admin:tenants.idp.set",
        "admin:tenants.idp.get",
        "admin:tenants.idp.delete",
        "admin:principals.password.set",
        "admin:tenants.attributes.set",
        "admin:tenants.attributes.get",
        "admin:models.attributes.set",
        "admin:models.attributes.get",
        "admin:principals.attributes.set",
        "admin:principals.attributes.get",
        "admin:surface",
        "admin:quota_requests.list",
        "admin:quota_requests.approve",
        "admin:quota_requests.deny",
        "admin:limits.get",
        "admin:limits.update",
        "admin:guard.get",
        "admin:guard.update",
        "admin:upstream_credentials.create",
        "admin:upstream_credentials.list",
        "admin:upstream_credentials.get",
        "admin:upstream_credentials.delete",
        "admin:upstream_credentials.allow",
        "admin:upstream_credentials.disallow",
        "admin:tenants.upstreams.get",
        "admin:tenants.upstreams.set",
        "admin:platform_principals.create",
        "admin:platform_principals.list",
        "admin:platform_principals.get",
        "admin:platform_principals.roles.set",
        "admin:platform_principals.disable",
        "admin:platform_principals.enable",
        "admin:platform_principals.delete",
        "admin:platform_principals.keys.create",
        "admin:platform_principals.keys.list",
    }
)
TENANT = frozenset(
    {
        "tenant:self.get",
        "tenant:keys.create",
        "tenant:keys.list",
        "tenant:keys.revoke",
        "tenant:principals.create",
        "tenant:principals.list",
        "tenant:usage.get",
        "tenant:models.list",
        "tenant:audit.list",
        "tenant:audit.export.get",
        "tenant:audit.proof.get",
        "tenant:audit.keys.list",
        "tenant:exchanges.list",
        "tenant:exchanges.get",
        "tenant:policies.list",
        "tenant:policies.update",
        "tenant:surface",
        "tenant:principals.update",
        "tenant:principals.delete",
        "tenant:keys.rotate",
        "tenant:models.versions.create",
        "tenant:models.versions.list",
        "tenant:models.versions.retire",
        "tenant:quota_requests.create",
        "tenant:quota_requests.list",
        "tenant:limits.get",
        "tenant:keys.limits.get",
        "tenant:keys.limits.update",
        "tenant:guard.get",
        "tenant:guard.update",
        "tenant:upstreams.get",
        "tenant:models.artifacts.pull",
    }
)
CONSOLE = frozenset(
    {
        "console:surface",
        "console:pages.get",
        "console:session.get",
        "console:session.delete",
    }
)
ACTIONS = V1 | ADMIN | TENANT | CONSOLE

# What a tenant admin may always do, whatever its tenant's own policies say:
# enter the tenant API and read and replace those policies.  So a tenant that
# forbids too much can always repair itself (`cedar.py` judges these without
# the tenant's policies; the platform's still hold).
SELF_REPAIR = frozenset({"tenant:surface", "tenant:policies.list", "tenant:policies.update"})

# Entering a surface at all: the gateway asks this before any route of the
# platform (`admin:surface`), tenant (`tenant:surface`) API or the console
# (`console:surface`); it counts as a read.
SURFACES = frozenset({"admin:surface", "tenant:surface", "console:surface"})
READS = frozenset(a for a in ACTIONS if a.endswith((".list", ".get"))) | SURFACES


def action_groups(action: str) -> tuple[str, ...]:
    """The Cedar action groups `action` belongs to, derived from its name alone."""
    surface, _, operation = action.partition(":")
    groups = [surface]
    if action in READS:
        groups.append(f"{surface}.read")
    if surface == "v1" and "." not in operation:
        groups.append("invoke")
    return tuple(groups)


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is taken on, as far as policy cares.

    `tenant_id` is the owner; None is a platform resource (a shared model, the
    tenant registry).  Levels: classification 0 public, 1 internal,
    2 confidential, 3 restricted; sensitivity 0 low, 1 normal, 2 high.
    """

    tenant_id: str | None = None
    kind: str = ""
    classification: int = 1
    sensitivity: int = 1
    region: str = ""


@dataclass(frozen=True, slots=True)
class Environment:
    """Facts of the request itself: the client address and the time."""

    client_ip: str | None = None
    now: datetime | None = None


class Authorizer(Protocol):
    def authorize(
        self,
        ctx: TenantContext,
        action: str,
        *,
        resource: Resource | None = None,
        env: Environment | None = None,
    ) -> None:
        """Return if `ctx` may perform `action`; raise `PermissionDenied` otherwise.

        Without `resource` the action is on the caller's own tenant (or the
        platform, for a platform principal).
        """
