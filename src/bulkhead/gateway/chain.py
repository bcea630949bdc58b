"""The gateway, assembled in one place: reading `build_chain` is reading a request's path.

Security layers wrap every route; the only unauthenticated path is the
`PUBLIC` allowlist below; the sign-in routes (`SIGN_IN`, and the console's
sign-in page, its API and its static files, `CONSOLE_PUBLIC`) need no
credential either, but are audited.  Metrics are not served here at all: they name
tenants, so they live on their own loopback listener.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bulkhead.audit import AuditSink
from bulkhead.console import assets as console_assets
from bulkhead.domain import TenantContext
from bulkhead.errors import NotFound
from bulkhead.finetune.service import FineTuning
from bulkhead.gateway.admit import AdmissionMiddleware
from bulkhead.gateway.anomaly import AnomalyMiddleware
from bulkhead.gateway.audit import AuditMiddleware, require_writer
from bulkhead.gateway.authenticate import AuthenticationMiddleware
from bulkhead.gateway.authorize import AuthorizationMiddleware
from bulkhead.gateway.body import BodyMiddleware
from bulkhead.gateway.client_cert import ClientCertMiddleware
from bulkhead.gateway.csrf import CsrfMiddleware
from bulkhead.gateway.endpoints import EndpointMiddleware, Relay, endpoint_of
from bulkhead.gateway.errors import ErrorMiddleware
from bulkhead.gateway.files_api import FilesEndpoints
from bulkhead.gateway.finetune_api import FineTuningEndpoints
from bulkhead.gateway.guard import GuardInMiddleware
from bulkhead.gateway.guard_out import GuardOutMiddleware
from bulkhead.gateway.guards import GuardBook, GuardHit
from bulkhead.gateway.headers import SecurityHeadersMiddleware
from bulkhead.gateway.models_api import ModelsEndpoints
from bulkhead.gateway.offload import Offload
from bulkhead.gateway.openai_api import OpenAIEndpoints
from bulkhead.gateway.request_id import RequestIdMiddleware
from bulkhead.gateway.retain import RetentionMiddleware
from bulkhead.gateway.route import RouteMiddleware
from bulkhead.gateway.share import FairShareMiddleware
from bulkhead.gateway.tenant_context import TenantContextMiddleware
from bulkhead.gateway.tracing import traced, traced_audit, traced_request
from bulkhead.gateway.validation import ValidationMiddleware
from bulkhead.gateway.vectors_api import VectorStoreEndpoints
from bulkhead.guard.anomaly import AnomalyDetector
from bulkhead.identity import OidcValidator
from bulkhead.identity.ca import InternalCA
from bulkhead.limits import Admission
from bulkhead.limits.fairshare import SharedCapacity
from bulkhead.observe import Metrics
from bulkhead.observe.tracing import Tracing
from bulkhead.policy import Authorizer
from bulkhead.runtime import UpstreamClient, WorkerSupervisor
from bulkhead.runtime.salts import CacheSalts
from bulkhead.store import Catalog
from bulkhead.store.artifacts import ArtifactService
from bulkhead.store.files import FileService
from bulkhead.store.retention import RetentionStore
from bulkhead.store.sessions import SessionVerifier
from bulkhead.vectors.embed import ChainEmbedder
from bulkhead.vectors.service import VectorService
from bulkhead.web.responses import send_bytes
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send

PUBLIC = frozenset({"/healthz"})
# Sign-in needs no bearer credential: each of these checks what its body (or, for
# logout, the session token it ends) carries.  Unlike /healthz they are audited.
SIGN_IN = frozenset(
    {
        "/auth/v1/login",
        "/auth/v1/logout",
        "/auth/v1/mfa/enroll",
        "/auth/v1/mfa/confirm",
        "/auth/v1/enrol",
        "/auth/v1/enrol/confirm",
    }
)
# The web console's sign-in page, its sign-in API and its static files (no data in any):
# every file is named (`console.assets`), so a path outside the list needs a session.
CONSOLE_PUBLIC = console_assets.PUBLIC_PATHS
_HEALTHY = orjson.dumps({"status": "ok"})


@dataclass(frozen=True, slots=True)
class GatewayDeps:
    catalog: Catalog
    authorizer: Authorizer
    admission: Admission
    upstreams: UpstreamClient
    workers: WorkerSupervisor
    audit: AuditSink
    metrics: Metrics
    management: ASGIApp
    openapi: Callable[[], dict[str, Any]]  # the API document, made when first asked for
    max_body_bytes: int
    files: FileService
    max_file_bytes: int
    retention: RetentionStore
    max_model_bytes: int = 4 * 1024 * 1024 * 1024
    sessions: SessionVerifier | None = None
    oidc: OidcValidator | None = None
    sign_in: ASGIApp | None = None
    # The web console (`console.endpoints`; None: `/console` answers 404).
    console: ASGIApp | None = None
    # TLS on the listener (HSTS), and the CA that issues tenants' client certificates.
    tls: bool = False
    client_ca: InternalCA | None = None
    # Fair sharing of shared deployments (who is told when Redis is down and a tenant
    # fails open), and vLLM cache salts per tenant.
    fair_queues: SharedCapacity | None = None
    on_fail_open: Callable[[TenantContext], None] | None = None
    salts: CacheSalts | None = None
    # Abuse and anomaly detection per key and tenant (alerts; opt-in throttling).
    anomaly: AnomalyDetector | None = None
    # Each tenant's guards (None: none run), and who is told of their findings.
    guards: GuardBook | None = None
    on_guard_hit: GuardHit | None = None
    # Fine-tuning jobs (None: `/v1/fine_tuning` answers 404 fine_tuning_disabled).
    fine_tuning: FineTuning | None = None
    # Vector stores (None: `/v1/vector_stores` answers 404 vector_stores_disabled).
    vectors: VectorService | None = None
    # The tenants' stored models: `DELETE /v1/models/{model}` removes a fine-tuned one's.
    artifacts: ArtifactService | None = None
    # Spans for every layer and the audit write (`gateway.tracing`); None: none, at no cost.
    tracing: Tracing | None = None


class Endpoints:
    """The innermost app: the model API, the management APIs, health and the API document."""

    def __init__(
        self,
        *,
        v1: ASGIApp,
        files: ASGIApp,
        management: ASGIApp,
        openapi: Callable[[], dict[str, Any]],
        sign_in: ASGIApp | None = None,
        console: ASGIApp | None = None,
        audit: AuditSink | None = None,
        fine_tuning: ASGIApp | None = None,
        vectors: ASGIApp | None = None,
        models: ASGIApp | None = None,
    ):
        self.models = models
        self.audit = audit  # /healthz fails while audit events cannot be written
        self.sign_in = sign_in
        self.console = console
        self.v1 = v1
        self.files = files
        self.fine_tuning = fine_tuning
        self.vectors = vectors
        self.management = management
        self.document = openapi
        self.openapi: bytes | None = None  # made at the first request for it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, endpoint = scope["path"], endpoint_of(scope)
        if endpoint is not None and endpoint.relay is Relay.FILES:
            await self.files(scope, receive, send)
        elif endpoint is not None and endpoint.relay is Relay.FINE_TUNING:
            assert self.fine_tuning is not None  # `build_chain` always gives one
            await self.fine_tuning(scope, receive, send)
        elif endpoint is not None and endpoint.relay is Relay.VECTOR_STORES:
            assert self.vectors is not None  # `build_chain` always gives one
            await self.vectors(scope, receive, send)
        elif endpoint is not None and endpoint.relay is Relay.MODEL_DELETE:
            assert self.models is not None  # `build_chain` always gives one
            await self.models(scope, receive, send)
        elif endpoint is not None:
            await self.v1(scope, receive, send)
        elif path in SIGN_IN and self.sign_in is not None:
            await self.sign_in(scope, receive, send)
        elif path == "/console" or path.startswith("/console/"):
            if self.console is None:
                raise NotFound(f"Unknown endpoint: {scope['method']} {path}")
            await self.console(scope, receive, send)
        elif path == "/healthz":
            if self.audit is not None:
                require_writer(self.audit)
            await send_bytes(send, 200, _HEALTHY)
        elif path == "/openapi.json":
            if self.openapi is None:  # tens of ms of schema making, once, off the event loop
                self.openapi = await asyncio.to_thread(lambda: orjson.dumps(self.document()))
            await send_bytes(send, 200, self.openapi)
        else:
            await self.management(scope, receive, send)


def layers_of(deps: GatewayDeps, offload: Offload) -> list[tuple[type[Any], dict[str, Any]]]:
    """The chain's layers, outermost first: the order `test_chain_order` pins, with what each
    may assume of the layers before it.  Over 60 lines on purpose: one list, so that reading
    it top to bottom is reading a request's path."""
    public = PUBLIC | SIGN_IN | CONSOLE_PUBLIC
    return [
        (RequestIdMiddleware, {}),  # request id; the status the client got, recorded once
        (SecurityHeadersMiddleware, {"tls": deps.tls}),  # nosniff; HSTS over TLS
        (ErrorMiddleware, {}),  # any error below -> one OpenAI-format response
        (EndpointMiddleware, {}),  # which /v1 endpoint (`endpoints.V1`), set once
        (AuditMiddleware, {"sink": deps.audit, "metrics": deps.metrics, "skip": PUBLIC}),
        (
            AuthenticationMiddleware,
            {
                "catalog": deps.catalog,
                "public": public,
                "sessions": deps.sessions,
                "oidc": deps.oidc,
            },
        ),  # the credential (a bearer header; on the console and management APIs, the cookie)
        (CsrfMiddleware, {}),  # a change made with the cookie proves it comes from the console
        (TenantContextMiddleware, {"catalog": deps.catalog, "public": public}),  # who, which tenant
        (AnomalyMiddleware, {"detector": deps.anomaly}),  # sees every refusal below it
        (ClientCertMiddleware, {"ca": deps.client_ca}),  # the tenant's own client certificate
        (
            BodyMiddleware,
            {
                "limit": deps.max_body_bytes,
                "file_limit": deps.max_file_bytes,
                "model_limit": deps.max_model_bytes,
                "offload": offload,
            },
        ),  # bounded body, JSON for the /v1 endpoints that take it
        (
            AuthorizationMiddleware,
            {"authorizer": deps.authorizer, "catalog": deps.catalog, "public": public},
        ),  # may this caller take this action on this model
        (
            ValidationMiddleware,
            {"default_length": deps.admission.default_max_tokens, "offload": offload},
        ),  # the whole body checked, defaults filled
        (AdmissionMiddleware, {"admission": deps.admission, "offload": offload}),  # limits
        (
            GuardInMiddleware,
            {
                "guards": deps.guards,
                "on_hit": deps.on_guard_hit,
                "offload": offload,
                "count": deps.admission.count,
            },
        ),  # input guards
        (
            RouteMiddleware,
            {"workers": deps.workers, "catalog": deps.catalog, "salts": deps.salts},
        ),  # the tenant's compute
        (
            FairShareMiddleware,
            {"queues": deps.fair_queues, "on_fail_open": deps.on_fail_open},
        ),  # fair share of shared capacity
        (RetentionMiddleware, {"store": deps.retention}),  # keep (encrypted) if configured
        (GuardOutMiddleware, {"on_hit": deps.on_guard_hit, "offload": offload}),  # output guards
    ]


def build_chain(deps: GatewayDeps) -> ASGIApp:
    offload = Offload()  # parsing, counting and scanning of large texts, off the event loop
    # With tracing on, each durable audit write is a span too (`gateway.tracing`).
    deps = dataclasses.replace(deps, audit=traced_audit(deps.audit, deps.tracing))
    app: ASGIApp = Endpoints(
        v1=OpenAIEndpoints(
            catalog=deps.catalog, upstreams=deps.upstreams, offload=offload, audit=deps.audit
        ),  # 7: a model call's entry is durable before it is forwarded
        files=FilesEndpoints(files=deps.files, offload=offload),  # 7 files, in the caller's tenant
        fine_tuning=FineTuningEndpoints(
            service=deps.fine_tuning, catalog=deps.catalog, authorizer=deps.authorizer
        ),  # 7 fine-tuning jobs, in the caller's tenant
        vectors=VectorStoreEndpoints(service=deps.vectors),  # 7 vector stores, likewise
        models=ModelsEndpoints(
            artifacts=deps.artifacts, catalog=deps.catalog, authorizer=deps.authorizer
        ),  # 7 a tenant's own fine-tuned model deleted
        management=deps.management,
        openapi=deps.openapi,
        sign_in=deps.sign_in,
        console=deps.console,
        audit=deps.audit,
    )
    # With tracing on, each layer sits in its own span (`gateway.tracing`); off, as it is.
    app = traced(app, Endpoints, deps.tracing)
    for layer, options in reversed(layers_of(deps, offload)):
        app = traced(layer(app, **options), layer, deps.tracing)
    app = traced_request(app, deps.tracing)
    if deps.vectors is not None and isinstance(deps.vectors.embed, ChainEmbedder):
        deps.vectors.embed.app = app  # chunks and queries are embedded through this chain
    return app
