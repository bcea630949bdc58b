"""Typed keys under which the chain puts facts into the ASGI scope.

Each fact is set once, by one layer, and read by the layers after it.  The
tenant context comes only from the authenticated credential.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from bulkhead.domain import ApiKey, ResolvedModel, SignedIn, TenantContext

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(slots=True)
class Exchange:
    """What one request did, filled in as it passes the chain; read by audit and metrics."""

    request_id: str
    started: float
    client: str | None
    surface: str = "other"
    action: str | None = None
    resource: str | None = None
    model: str | None = None
    status: int = 0
    decision: str = "allow"
    reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tenant_id: str | None = None
    tenant_name: str | None = None
    principal_id: str | None = None
    credential_id: str | None = None
    stream: bool = False
    # What a management call created, and the tenant a platform call acted on.
    object_id: str | None = None
    target_tenant: str | None = None


EXCHANGE = "bulkhead.exchange"
CREDENTIAL = "bulkhead.credential"
CONTEXT = "bulkhead.context"
BODY = "bulkhead.body"
JSON = "bulkhead.json"
MODEL = "bulkhead.model"
TARGET = "bulkhead.target"


def set_once(scope: Scope, key: str, value: object) -> None:
    if key in scope:
        raise RuntimeError(f"{key} is set once per request")
    scope[key] = value


def exchange(scope: Scope) -> Exchange:
    ex: Exchange = scope[EXCHANGE]
    return ex


def context(scope: Scope) -> TenantContext:
    ctx: TenantContext = scope[CONTEXT]
    return ctx


# What authenticated the request: a service's API key, or a person's session or IdP token.
Credential = ApiKey | SignedIn


def credential(scope: Scope) -> Credential:
    found: Credential = scope[CREDENTIAL]
    return found


def resolved_model(scope: Scope) -> ResolvedModel | None:
    model: ResolvedModel | None = scope.get(MODEL)
    return model


def json_body(scope: Scope) -> dict[str, Any]:
    body: dict[str, Any] = scope[JSON]
    return body


def raw_body(scope: Scope) -> bytes:
    body: bytes = scope.get(BODY, b"")
    return body


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def note_action(scope: Scope, action: str, resource: str | None = None) -> None:
    """Name the operation for the audit event (called by the router that decides it)."""
    ex = exchange(scope)
    ex.action = action
    if resource is not None:
        ex.resource = resource


def note_outcome(scope: Scope, *, created: str | None, target_tenant: str | None) -> None:
    """Name what the call created and the tenant it acted on, for the audit event."""
    ex = exchange(scope)
    if created is not None:
        ex.object_id = created
    if target_tenant is not None:
        ex.target_tenant = target_tenant
