"""Step 6: pick where the call goes — the tenant's deployment of the resolved model.

A deployment served by vLLM (option ``engine=vllm``) gets the caller's
tenant's `cache_salt` in every request body (`runtime.salts`), so its prefix
cache is never shared across tenants.

An upstream's credential is a platform-registered one, opened when the
catalog loaded (`store.upstreams`): nothing here reads the environment or
the database.  An upstream the tenant chose (a model version) also holds to
the tenant's egress allowlist, may use only a credential allowed to the
tenant, and answers every failure with one opaque error (`Target.opaque`).
"""

from __future__ import annotations

import dataclasses

from bulkhead.domain import Deployment, DeploymentKind, ResolvedModel
from bulkhead.errors import Unavailable
from bulkhead.runtime import ENGINE_OPTION, PEER_ID_OPTION, Target, WorkerSupervisor
from bulkhead.runtime.salts import CacheSalts
from bulkhead.store import Catalog
from bulkhead.store.upstreams import UpstreamBook
from bulkhead.web.scope import (
    TARGET,
    ASGIApp,
    Receive,
    Scope,
    Send,
    context,
    resolved_model,
    set_once,
)


def credential_headers(
    book: UpstreamBook, deployment: Deployment, owner: str | None
) -> dict[str, str]:
    """The Authorization header of the deployment's credential, if it has one it may use."""
    name = deployment.credential
    if name is None:
        return {}
    allowed = not deployment.chosen_by_tenant or name in book.grants.get(owner or "", ())
    secret = book.secrets.get(name) if allowed else None
    if secret is None:
        # Name the setting, never a value: the operator (or the platform's grant) must fix it.
        raise Unavailable("The model's upstream credential is not available.")
    return {"authorization": f"Bearer {secret}"}


def upstream_target(book: UpstreamBook, resolved: ResolvedModel) -> Target:
    deployment, owner = resolved.deployment, resolved.model.owner_tenant_id
    tenant_chosen = deployment.chosen_by_tenant
    return Target(
        base_url=deployment.base_url.rstrip("/"),
        upstream_model=deployment.upstream_model,
        timeout_s=deployment.timeout_s,
        headers=credential_headers(book, deployment, owner),
        peer_id=deployment.options.get(PEER_ID_OPTION),
        # A version's upstream goes only where its tenant's allowlist says; the
        # platform's own deployments use the client's (platform) policy.
        egress=book.policy(owner or "") if tenant_chosen else None,
        opaque=tenant_chosen,
    )


class RouteMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        workers: WorkerSupervisor,
        catalog: Catalog,
        salts: CacheSalts | None = None,
    ):
        self.app = app
        self.workers = workers
        self.catalog = catalog
        self.salts = salts

    def target(self, resolved: ResolvedModel) -> Target:
        deployment = resolved.deployment
        if deployment.kind is DeploymentKind.LOCAL:
            return self.workers.target(deployment.id, deployment.timeout_s)
        return upstream_target(self.catalog.snapshot.upstreams, resolved)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = resolved_model(scope) if scope["type"] == "http" else None
        if resolved is not None:
            target = self.target(resolved)
            tenant_id = context(scope).tenant_id
            if resolved.deployment.options.get(ENGINE_OPTION) == "vllm" and tenant_id:
                if self.salts is None:
                    raise Unavailable("The model's deployment needs a cache salt.")
                salt = {"cache_salt": self.salts.for_tenant(tenant_id)}
                target = dataclasses.replace(target, body_fields=salt)
            set_once(scope, TARGET, target)
        await self.app(scope, receive, send)
