"""The gateway, assembled in one place: reading `build_chain` is reading a request's path.

Security layers wrap every route; the only unauthenticated path is the
`PUBLIC` allowlist below.  Metrics are not served here at all: they name
tenants, so they live on their own loopback listener.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bulkhead.audit import AuditSink
from bulkhead.gateway.account import AccountingMiddleware
from bulkhead.gateway.admit import AdmissionMiddleware
from bulkhead.gateway.audit import AuditMiddleware
from bulkhead.gateway.authenticate import AuthenticationMiddleware
from bulkhead.gateway.authorize import AuthorizationMiddleware
from bulkhead.gateway.body import BodyMiddleware
from bulkhead.gateway.errors import ErrorMiddleware
from bulkhead.gateway.files_api import FilesEndpoints
from bulkhead.gateway.guard import GuardInMiddleware
from bulkhead.gateway.guard_out import GuardOutMiddleware
from bulkhead.gateway.openai_api import OpenAIEndpoints
from bulkhead.gateway.request_id import RequestIdMiddleware
from bulkhead.gateway.retain import RetentionMiddleware
from bulkhead.gateway.route import RouteMiddleware
from bulkhead.gateway.tenant_context import TenantContextMiddleware
from bulkhead.guard import InputGuard, OutputGuard
from bulkhead.limits import Admission, UsageLedger
from bulkhead.observe import Metrics
from bulkhead.policy import Authorizer
from bulkhead.runtime import UpstreamClient, WorkerSupervisor
from bulkhead.store import Catalog
from bulkhead.store.files import FileService
from bulkhead.store.retention import RetentionStore
from bulkhead.web.responses import send_bytes
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send

PUBLIC = frozenset({"/healthz"})
_HEALTHY = orjson.dumps({"status": "ok"})


@dataclass(frozen=True, slots=True)
class GatewayDeps:
    catalog: Catalog
    authorizer: Authorizer
    admission: Admission
    input_guards: Sequence[InputGuard]
    output_guards: Sequence[OutputGuard]
    ledger: UsageLedger
    upstreams: UpstreamClient
    workers: WorkerSupervisor
    audit: AuditSink
    metrics: Metrics
    management: ASGIApp
    openapi: dict[str, Any]
    max_body_bytes: int
    files: FileService
    max_file_bytes: int
    retention: RetentionStore
    max_model_bytes: int = 4 * 1024 * 1024 * 1024


class Endpoints:
    """The innermost app: the model API, the management APIs, health and the API document."""

    def __init__(
        self, *, v1: ASGIApp, files: ASGIApp, management: ASGIApp, openapi: dict[str, Any]
    ):
        self.v1 = v1
        self.files = files
        self.management = management
        self.openapi = orjson.dumps(openapi)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path.startswith("/v1/files"):
            await self.files(scope, receive, send)
        elif path.startswith("/v1/"):
            await self.v1(scope, receive, send)
        elif path == "/healthz":
            await send_bytes(send, 200, _HEALTHY)
        elif path == "/openapi.json":
            await send_bytes(send, 200, self.openapi)
        else:
            await self.management(scope, receive, send)


def build_chain(deps: GatewayDeps) -> ASGIApp:
    public = PUBLIC
    layers: list[tuple[type[Any], dict[str, Any]]] = [
        (RequestIdMiddleware, {}),  # 1  request id (also on error responses)
        (ErrorMiddleware, {}),  # any error below -> one OpenAI-format response
        (AuditMiddleware, {"sink": deps.audit, "metrics": deps.metrics, "skip": public}),  # 10
        (AuthenticationMiddleware, {"catalog": deps.catalog, "public": public}),  # 1  authn
        (TenantContextMiddleware, {"catalog": deps.catalog, "public": public}),  # 2  context
        (
            BodyMiddleware,
            {
                "limit": deps.max_body_bytes,
                "file_limit": deps.max_file_bytes,
                "model_limit": deps.max_model_bytes,
            },
        ),  # bounded body, JSON for /v1
        (
            AuthorizationMiddleware,
            {"authorizer": deps.authorizer, "catalog": deps.catalog, "public": public},
        ),  # 3
        (AdmissionMiddleware, {"admission": deps.admission}),  # 4  admit
        (GuardInMiddleware, {"guards": deps.input_guards}),  # 5  guard in
        (RouteMiddleware, {"workers": deps.workers}),  # 6  route
        (RetentionMiddleware, {"store": deps.retention}),  # keep (encrypted) if configured
        (GuardOutMiddleware, {"guards": deps.output_guards}),  # 8  guard out
        (AccountingMiddleware, {"ledger": deps.ledger}),  # 9  account
    ]
    app: ASGIApp = Endpoints(
        v1=OpenAIEndpoints(catalog=deps.catalog, upstreams=deps.upstreams),  # 7 call
        files=FilesEndpoints(files=deps.files),  # 7 files, in the caller's tenant
        management=deps.management,
        openapi=deps.openapi,
    )
    for layer, options in reversed(layers):
        app = layer(app, **options)
    return app
