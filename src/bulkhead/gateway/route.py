"""Step 6: pick where the call goes — the tenant's deployment of the resolved model."""

from __future__ import annotations

import os

from bulkhead.domain import Deployment, DeploymentKind
from bulkhead.errors import Unavailable
from bulkhead.runtime import PEER_ID_OPTION, Target, WorkerSupervisor
from bulkhead.web.scope import TARGET, ASGIApp, Receive, Scope, Send, resolved_model


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
    def __init__(self, app: ASGIApp, *, workers: WorkerSupervisor):
        self.app = app
        self.workers = workers

    def target(self, deployment: Deployment) -> Target:
        if deployment.kind is DeploymentKind.LOCAL:
            return self.workers.target(deployment.id, deployment.timeout_s)
        return upstream_target(deployment)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = resolved_model(scope) if scope["type"] == "http" else None
        if resolved is not None:
            scope[TARGET] = self.target(resolved.deployment)
        await self.app(scope, receive, send)
