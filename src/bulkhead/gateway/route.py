"""Step 6: pick where the call goes — the tenant's deployment of the resolved model.

A deployment served by vLLM (option ``engine=vllm``) gets the caller's
tenant's `cache_salt` in every request body (`runtime.salts`), so its prefix
cache is never shared across tenants.
"""

from __future__ import annotations

import dataclasses
import os

from bulkhead.domain import Deployment, DeploymentKind
from bulkhead.errors import Unavailable
from bulkhead.runtime import PEER_ID_OPTION, Target, WorkerSupervisor
from bulkhead.runtime.salts import CacheSalts
from bulkhead.web.scope import TARGET, ASGIApp, Receive, Scope, Send, context, resolved_model

ENGINE_OPTION = "engine"


def upstream_target(deployment: Deployment) -> Target:
    headers: dict[str, str] = {}
    if deployment.api_key_env:
        secret = os.environ.get(deployment.api_key_env)
        if not secret:
            # Name the deployment's setting, never a value: the operator must fix it.
            raise Unavailable("The model's upstream credential is not configured.")
        headers["authorization"] = f"Bearer {secret}"
    return Target(
        base_url=deployment.base_url.rstrip("/"),
        upstream_model=deployment.upstream_model,
        timeout_s=deployment.timeout_s,
        headers=headers,
        peer_id=deployment.options.get(PEER_ID_OPTION),
    )


class RouteMiddleware:
    def __init__(self, app: ASGIApp, *, workers: WorkerSupervisor, salts: CacheSalts | None = None):
        self.app = app
        self.workers = workers
        self.salts = salts

    def target(self, deployment: Deployment) -> Target:
        if deployment.kind is DeploymentKind.LOCAL:
            return self.workers.target(deployment.id, deployment.timeout_s)
        return upstream_target(deployment)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = resolved_model(scope) if scope["type"] == "http" else None
        if resolved is not None:
            target = self.target(resolved.deployment)
            tenant_id = context(scope).tenant_id
            if resolved.deployment.options.get(ENGINE_OPTION) == "vllm" and tenant_id:
                if self.salts is None:
                    raise Unavailable("The model's deployment needs a cache salt.")
                salt = {"cache_salt": self.salts.for_tenant(tenant_id)}
                target = dataclasses.replace(target, body_fields=salt)
            scope[TARGET] = target
        await self.app(scope, receive, send)
