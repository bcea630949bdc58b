"""Typed keys under which the chain puts facts into the ASGI scope.

Each fact is set once (`set_once`), by one layer, and read by the layers
after it; a test refuses any other `scope[...] =` in the gateway.  The
tenant context comes only from the authenticated credential.

The `Exchange` is the request's audit record.  Layers write it only through
its named methods (`principal`, `names`, `deny`, `usage`, ...): the status by
the outermost layer alone (`responded`), so no layer depends on another
sitting outside it to learn how the call ended.
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
    # Prompt tokens the gateway itself added (the guard's canary), and the caller's own, as the
    # gateway counts them: the upstream's count is charged and shown in their proportion.
    hidden_prompt: int = 0
    own_prompt: int = 0
    tenant_id: str | None = None
    tenant_name: str | None = None
    principal_id: str | None = None
    credential_id: str | None = None
    stream: bool = False
    # A model call whose `started` entry is durable (`gateway.audit.record_forwarding`):
    # the call is on record, so its closing entry need not hold the answer back.
    on_record: bool = False
    # What a management call created, and the tenant a platform call acted on.
    object_id: str | None = None
    target_tenant: str | None = None

    def responded(self, status: int) -> None:
        """The status that went out (the outermost layer, as the response starts)."""
        self.status = status

    def names(
        self,
        *,
        surface: str | None = None,
        action: str | None = None,
        resource: str | None = None,
        model: str | None = None,
    ) -> None:
        """What the call is: its surface, the action decided, the resource and model."""
        if surface is not None:
            self.surface = surface
        if action is not None:
            self.action = action
        if resource is not None:
            self.resource = resource
        if model is not None:
            self.model = model

    def principal(
        self,
        *,
        tenant_id: str | None = None,
        tenant_name: str | None = None,
        principal_id: str | None = None,
        credential_id: str | None = None,
    ) -> None:
        """Who is calling, as far as it is known (set again as authentication learns more)."""
        if tenant_id is not None:
            self.tenant_id = tenant_id
        if tenant_name is not None:
            self.tenant_name = tenant_name
        if principal_id is not None:
            self.principal_id = principal_id
        if credential_id is not None:
            self.credential_id = credential_id

    def deny(self, code: str, *, policy_id: str | None = None, detail: str | None = None) -> None:
        """A refusal: the one shape every layer's deny takes in the audit record."""
        self.decision = "deny"
        if policy_id is not None:
            self.reason = f"{code}:{policy_id}"
        elif detail is not None:
            self.reason = f"{code}:{detail}"
        else:
            self.reason = code

    def finding(self, reasons: list[str]) -> None:
        """Add labels (a guard's findings, a grant exemption) to the reason, each once."""
        noted = self.reason.split(",") if self.reason else []
        self.reason = ",".join([*noted, *(r for r in reasons if r not in noted)])

    def failed(self, reason: str) -> None:
        """An error that is not a refusal (a bug, an upstream failure), unless one is noted."""
        if self.reason is None:
            self.reason = reason

    def usage(self, prompt: int | None, completion: int | None) -> None:
        """The tokens the call used, as the upstream reported or the gateway measured."""
        self.prompt_tokens, self.completion_tokens = prompt, completion

    def hide_prompt(self, tokens: int, own: int = 0) -> None:
        """`tokens` of the prompt the upstream counts are the gateway's own, not the caller's
        (`own`, when the gateway counted it: 0 if not)."""
        self.hidden_prompt, self.own_prompt = max(tokens, 0), max(own, 0)

    def caller_prompt(self, upstream: int) -> int:
        """The caller's share of a prompt the upstream counted as `upstream` tokens.

        In proportion where the gateway counted both parts (the upstream's
        tokenizer is not the gateway's: a difference is shared out, never
        charged whole to either side); else less the hidden part, never below 0.
        """
        hidden = self.hidden_prompt
        if not hidden or upstream <= 0:
            return upstream
        if self.own_prompt:
            return round(upstream * self.own_prompt / (self.own_prompt + hidden))
        return max(upstream - hidden, 0)

    def streamed(self) -> None:
        self.stream = True

    def put_on_record(self) -> None:
        """The call's `started` entry is durable: whatever happens next, it is in the log."""
        self.on_record = True

    def created(self, object_id: str | None, target_tenant: str | None) -> None:
        """What a management call created, and the tenant a platform call acted on."""
        if object_id is not None:
            self.object_id = object_id
        if target_tenant is not None:
            self.target_tenant = target_tenant


EXCHANGE = "bulkhead.exchange"
REQUEST_ID = "bulkhead.rid"
ENDPOINT = "bulkhead.endpoint"  # the /v1 endpoint matched (gateway.endpoints.V1Endpoint)
TICKET = "bulkhead.ticket"  # admission's reservation (limits.Ticket), settled after the call
# A sub-request the gateway makes inside a call of the same credential that holds a
# concurrency slot (a vector store search embedding its query): admission takes no
# second slot.  Only the gateway sets it; an ASGI scope carries nothing a client sent.
NESTED = "bulkhead.nested"
GUARDED = "bulkhead.guarded"  # the input guard's GuardedCall, read by the output guard
OUTGOING = "bulkhead.outgoing"  # the body as the guards rewrote it (and what is kept of it)
CREDENTIAL = "bulkhead.credential"
# The credential came from the console's session cookie (`web.cookies.CookieSession`), not
# from an `Authorization` header: a state change then needs its CSRF proofs (`gateway/csrf.py`).
COOKIE_SESSION = "bulkhead.cookie_session"
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


@dataclass(frozen=True, slots=True)
class Outgoing:
    """The body the guards let through: what goes upstream, and the bytes kept of it."""

    body: dict[str, Any]
    kept: bytes | None  # None: the request's own bytes (nothing was rewritten)


def outgoing_body(scope: Scope) -> dict[str, Any]:
    """What the upstream is sent: the guards' rewrite if they ran, else the parsed body."""
    out: Outgoing | None = scope.get(OUTGOING)
    return out.body if out is not None else json_body(scope)


def kept_body(scope: Scope) -> bytes:
    """What retention keeps of the request: what the guards let through."""
    out: Outgoing | None = scope.get(OUTGOING)
    return out.kept if out is not None and out.kept is not None else raw_body(scope)


def note_action(scope: Scope, action: str, resource: str | None = None) -> None:
    """Name the operation for the audit event (called by the router that decides it)."""
    exchange(scope).names(action=action, resource=resource)


def note_outcome(scope: Scope, *, created: str | None, target_tenant: str | None) -> None:
    """Name what the call created and the tenant it acted on, for the audit event."""
    exchange(scope).created(created, target_tenant)
