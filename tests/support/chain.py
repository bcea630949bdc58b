"""A small in-memory world for the chain's layers: one tenant, its keys, principals and models.

Each layer test wraps one layer around `bulkhead.testing.asgi.FakeApp` and
starts from `scope_at(...)`: the scope as the layers before it leave it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from bulkhead.domain import (
    ApiKey,
    Deployment,
    DeploymentKind,
    Endpoint,
    Model,
    Principal,
    PrincipalKind,
    ResolvedModel,
    Role,
    Tenant,
    TenantConfig,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.gateway.endpoints import match
from bulkhead.identity.apikeys import issue_key
from bulkhead.runtime import Target
from bulkhead.store import Snapshot
from bulkhead.testing.asgi import http_scope
from bulkhead.web.scope import (
    BODY,
    CONTEXT,
    ENDPOINT,
    EXCHANGE,
    JSON,
    MODEL,
    TARGET,
    Exchange,
    Scope,
)

TENANT = Tenant("ten_acme", "acme", Tier.SHARED, TenantStatus.ACTIVE)
OTHER = Tenant("ten_other", "other", Tier.SHARED, TenantStatus.ACTIVE)
USER = Principal("prn_svc", TENANT.id, "svc", PrincipalKind.SERVICE, frozenset({Role.END_USER}))
OPERATOR = Principal(
    "prn_ops", None, "ops", PrincipalKind.SERVICE, frozenset({Role.PLATFORM_ADMIN})
)
CHAT_MODEL = ResolvedModel(
    Model("mdl_chat", "chat-small", None, frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})),
    Deployment(
        "dep_chat", "mdl_chat", DeploymentKind.UPSTREAM, "http://upstream.test/v1", "llama-3"
    ),
)
EMBED_MODEL = ResolvedModel(
    Model("mdl_emb", "embed-small", TENANT.id, frozenset({Endpoint.EMBEDDINGS})),
    Deployment("dep_emb", "mdl_emb", DeploymentKind.UPSTREAM, "http://upstream.test/v1", "e5"),
)
TARGET_ = Target(base_url="http://upstream.test/v1", upstream_model="llama-3")


def chat_body(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "chat-small", "messages": [{"role": "user", "content": text}], **extra}


@dataclass
class World:
    """Tenants, principals, models and issued keys, published as a catalog `snapshot`."""

    tenants: dict[str, Tenant] = field(default_factory=lambda: {t.id: t for t in (TENANT, OTHER)})
    principals: dict[str, Principal] = field(
        default_factory=lambda: {p.id: p for p in (USER, OPERATOR)}
    )
    keys: dict[str, ApiKey] = field(default_factory=dict)
    models: dict[str, ResolvedModel] = field(
        default_factory=lambda: {m.model.name: m for m in (CHAT_MODEL, EMBED_MODEL)}
    )
    # Whether the catalog could not be confirmed fresh for too long (`Catalog.stale`).
    unconfirmed: bool = False

    def stale(self) -> bool:
        return self.unconfirmed

    def key(self, principal: Principal = USER, role: Role | None = None, **options: Any) -> str:
        """Issue a key for `principal`; return its token."""
        issued = issue_key()
        self.keys[issued.key_id] = ApiKey(
            id=issued.key_id,
            tenant_id=principal.tenant_id,
            principal_id=principal.id,
            role=role or next(iter(principal.roles)),
            secret_hash=issued.secret_hash,
            **options,
        )
        return issued.secret

    @property
    def snapshot(self) -> Snapshot:
        return Snapshot(
            version=1,
            keys=MappingProxyType(dict(self.keys)),
            tenants=MappingProxyType(dict(self.tenants)),
            principals=MappingProxyType(dict(self.principals)),
            visible=MappingProxyType({TENANT.id: MappingProxyType(dict(self.models))}),
            principal_names=MappingProxyType(
                {(p.tenant_id, p.name): p.id for p in self.principals.values()}
            ),
        )


def tenant_with(**config: Any) -> Tenant:
    return Tenant(TENANT.id, TENANT.name, TENANT.tier, TENANT.status, config=TenantConfig(**config))


def caller(
    tenant: Tenant | None = TENANT, principal: Principal = USER, **extra: Any
) -> TenantContext:
    role = next(iter(principal.roles))
    return TenantContext(
        tenant=tenant, principal=principal, role=role, credential_id="key_1", **extra
    )


def scope_at(
    method: str = "POST",
    path: str = "/v1/chat/completions",
    *,
    body: dict[str, Any] | None = None,
    ctx: TenantContext | None = None,
    model: ResolvedModel | None = None,
    target: Target | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Scope:
    """A scope as the layers before the one under test leave it (only what is given)."""
    scope = http_scope(method, path, headers=headers or [])
    scope[ENDPOINT] = match(method, path)  # as the endpoint layer leaves it
    started = time.perf_counter()
    scope[EXCHANGE] = Exchange(request_id="req_t", started=started, client="203.0.113.7")
    if ctx is not None:
        scope[CONTEXT] = ctx
    if body is not None:
        scope[BODY] = orjson.dumps(body)
        scope[JSON] = body
    if model is not None:
        scope[MODEL] = model
    if target is not None:
        scope[TARGET] = target
    return scope
