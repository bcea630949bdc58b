"""A small router for the JSON management APIs, with their OpenAPI document.

Each route names its action; the router asks the `Authorizer` before any
handler runs, so no handler can forget the check.  Each route also declares
the effects it can reach (`bulkhead.admin.effects`); a platform route that
reaches a privileged one needs the caller's live grant (`bulkhead.pam`) for
its grant action and target, which the route's `grant_target` names from the
parsed call (or exempts, with a reason for the audit event).  Where that
target is a tenant, the grant is first a Cedar decision: the router asks
again with the tenant as the resource and the caller's live grants (for this
action) as `grants`, so `platform.tenant-isolation` denies a platform admin
without one, and the audit event names that policy; then the grant is used
(consumed if single-use) and given back if the handler fails.  Only
privileged routes carry grants: the other platform routes act on the
platform's registry, not on a tenant-owned resource, and take no database
round trip for them.  A tenant route's handler runs inside the database's
tenant scope, where a platform transaction (row-level security off) is
refused.  Handlers get a typed `Call` and return a pydantic model (or a list
of them); they never build HTTP responses or error bodies.

Routes are declared with `Route.get/post/put/patch/delete(path, ...)`, the
rest keyword-only, in one table per resource module; each names the model of
its answer (`response`, None only for a 204).  A path no route has answers
404; a path that routes have, asked with another method, answers 405 with an
`Allow` header naming theirs.  Handlers reach what they work with through
`Call.services` (`bulkhead.admin.deps`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Required, TypedDict, Unpack
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError

from bulkhead.admin.effects import PRIVILEGED_EFFECTS, Effect, Exempt
from bulkhead.admin.facts import target_tenant, written_id
from bulkhead.domain import TenantContext
from bulkhead.errors import (
    BulkheadError,
    InvalidRequest,
    MalformedJSON,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
)
from bulkhead.pam import PLATFORM_TARGET, PRIVILEGED, AccessRequest, AccessService, refusal
from bulkhead.policy import Authorizer, Environment, Resource
from bulkhead.web.jsonbody import check_shape, require_json_media_type
from bulkhead.web.responses import send_bytes
from bulkhead.web.scope import (
    Receive,
    Scope,
    Send,
    context,
    exchange,
    note_action,
    note_outcome,
    raw_body,
)

if TYPE_CHECKING:
    from bulkhead.admin.deps import Services

_INLINE_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Call:
    ctx: TenantContext
    params: dict[str, str]
    body: Any
    services: Services
    query: dict[str, str] = field(default_factory=dict)
    exempt: Exempt | None = None  # why a privileged route's call needed no grant

    def int_query(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = lo - 1
        if not lo <= value <= hi:
            raise InvalidRequest(f"'{name}' must be an integer from {lo} to {hi}.", param=name)
        return value


@dataclass(frozen=True, slots=True)
class Binary:
    """A `binary` route's answer (application/octet-stream), in the pieces it was made of;
    `done` runs once it is sent or has failed (its handler's slot given back, say)."""

    chunks: Sequence[bytes | bytearray]
    done: Callable[[], object] | None = None


_NO_STORE = (b"cache-control", b"no-store")
_BINARY_HEADERS = [(b"content-type", b"application/octet-stream"), _NO_STORE]
# Every answer is one principal's (a new key's one-time secret among them), and the web
# console reads them in a browser: none may sit in its cache, nor in any on the way.
_JSON_HEADERS = [(b"content-type", b"application/json"), _NO_STORE]


async def _send_binary(send: Send, status: int, answer: Binary) -> None:
    # One body message: the audit layer sends nothing of an answer before its record is
    # durable, and it waits at the last message, so a piece sent earlier would go out
    # unrecorded.  Joining copies, off the event loop.
    body = await asyncio.to_thread(b"".join, answer.chunks)
    await send_bytes(send, status, body, _BINARY_HEADERS)


Result = BaseModel | Sequence[BaseModel] | dict[str, Any] | Binary | None
Handler = Callable[[Call], Awaitable[Result]]
# The target a privileged route's grant must name, decided from the parsed call
# before the handler runs; `Exempt` lets this call through without a grant.
GrantTarget = Callable[[Call], Awaitable[str | Exempt]]
# The resource a route acts on, found from the parsed call before the handler runs: the
# router asks the `Authorizer` again with it (a model's owner, classification, region).
ResourceOf = Callable[[Call], Awaitable[Resource]]


async def name_or_platform(call: Call) -> str | Exempt:
    """The default grant target: the tenant in the path, else the platform itself."""
    return call.params.get("name", PLATFORM_TARGET)


class RouteOptions(TypedDict, total=False):
    """What a route declares besides its method and path (`Route`'s fields)."""

    action: Required[str]
    handler: Required[Handler]
    summary: Required[str]
    response: Required[type[BaseModel] | None]
    body: type[BaseModel] | None
    many: bool
    status: int
    raw: bool
    binary: bool
    effects: frozenset[Effect]
    grant_target: GrantTarget
    grant_action: str | None
    resource: ResourceOf | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One management route.  Build it with `Route.get/post/put/patch/delete`.

    `response` is the model of a success answer (the items of a list answer
    where `many`); it is None only for a 204, which has no body.
    """

    method: str
    path: str
    action: str
    handler: Handler
    summary: str
    response: type[BaseModel] | None
    body: type[BaseModel] | None = None
    many: bool = False
    status: int = 200
    raw: bool = False  # the handler gets the request body as bytes (an upload)
    binary: bool = False  # the handler answers `Binary` (application/octet-stream), not a model
    effects: frozenset[Effect] = frozenset()  # what it can reach; see bulkhead.admin.effects
    grant_target: GrantTarget = name_or_platform
    grant_action: str | None = None  # the action its grant names, if not its own
    resource: ResourceOf | None = None  # what it acts on, authorized again before the handler

    def __post_init__(self) -> None:
        if (self.response is None) != (self.status == 204 or self.binary):
            raise ValueError(f"{self.method} {self.path}: a response model, status 204 or binary")

    @classmethod
    def get(cls, path: str, **options: Unpack[RouteOptions]) -> Route:
        return cls(method="GET", path=path, **options)

    @classmethod
    def post(cls, path: str, **options: Unpack[RouteOptions]) -> Route:
        return cls(method="POST", path=path, **options)

    @classmethod
    def put(cls, path: str, **options: Unpack[RouteOptions]) -> Route:
        return cls(method="PUT", path=path, **options)

    @classmethod
    def patch(cls, path: str, **options: Unpack[RouteOptions]) -> Route:
        return cls(method="PATCH", path=path, **options)

    @classmethod
    def delete(cls, path: str, **options: Unpack[RouteOptions]) -> Route:
        return cls(method="DELETE", path=path, **options)

    @property
    def privileged(self) -> bool:
        """Whether a call needs a live grant (unless `grant_target` exempts it)."""
        return self.action.startswith("admin:") and bool(self.effects & PRIVILEGED_EFFECTS)

    @property
    def needs(self) -> str:
        """The action a grant for this route must name."""
        return self.grant_action or self.action

    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first.get("loc", ())) or None
    if first.get("type") == "extra_forbidden":
        return f"Unknown field '{param}'.", param
    return f"Invalid '{param}': {first.get('msg')}.", param


def parse_body(model: type[BaseModel], raw: bytes) -> BaseModel:
    check_shape(raw)  # too many values or too deep: refused before orjson builds any
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise MalformedJSON("We could not parse the JSON body of your request.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, param = _validation_message(exc)
        raise InvalidRequest(message, param=param) from None


def _dump(result: Result) -> bytes:
    if result is None or isinstance(result, Binary):
        return b""
    if isinstance(result, BaseModel):
        return result.__pydantic_serializer__.to_json(result)
    if isinstance(result, dict):
        return orjson.dumps(result)
    data = [item.model_dump(mode="json") for item in result]
    return orjson.dumps({"object": "list", "data": data})


class Router:
    def __init__(
        self,
        routes: Sequence[Route],
        *,
        authorizer: Authorizer,
        access: AccessService | None = None,
        tenant_ids: Callable[[str], str | None] | None = None,
        services: Services,
        tenant_scope: Callable[[], AbstractContextManager[None]] = nullcontext,
    ):
        self.routes = tuple(routes)
        self.services = services
        self.authorizer = authorizer
        self.access = access
        self.tenant_ids = tenant_ids  # tenant name -> id, for a grant's target
        self.tenant_scope = tenant_scope  # where platform transactions are refused
        self._compiled = [(r, r.pattern()) for r in self.routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for `method` and `path`: 404 for an unknown path, 405 for another method."""
        allow: list[str] = []
        for route, pattern in self._compiled:
            found = pattern.match(path)
            if found and route.method == method:
                return route, found.groupdict()
            if found:
                allow.append(route.method)
        if allow:
            raise MethodNotAllowed(
                f"{path} does not take {method}; it takes {', '.join(sorted(set(allow)))}.",
                allow=tuple(sorted(set(allow))),
            )
        raise NotFound(f"Unknown endpoint: {method} {path}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, params = self.match(scope["method"], scope["path"])
        note_action(scope, route.action, next(iter(params.values()), None))
        ctx = context(scope)
        env = Environment(client_ip=exchange(scope).client)
        self.authorizer.authorize(ctx, route.action, env=env)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        body: Any = None
        if route.raw:
            body = raw_body(scope)
        elif route.body is not None:
            require_json_media_type(scope)
            raw = raw_body(scope)
            if len(raw) > _INLINE_BYTES:  # checked and parsed on a worker thread, off the loop
                body = await asyncio.to_thread(parse_body, route.body, raw)
            else:
                body = parse_body(route.body, raw)
        call = Call(ctx=ctx, params=params, body=body, services=self.services, query=query)
        if route.resource is not None:
            resource = await route.resource(call)
            self.authorizer.authorize(ctx, route.action, resource=resource, env=env)
        note_outcome(scope, created=None, target_tenant=self._target(route, call, None))
        grant, call = await self._grant(route, call, env, scope)
        # A tenant's own routes never switch row-level security off.
        within = self.tenant_scope() if route.action.startswith("tenant:") else nullcontext()
        try:
            with within:
                result = await route.handler(call)
        except BulkheadError:
            if grant is not None and self.access is not None:
                await asyncio.to_thread(self.access.release, grant)
            raise
        try:
            target = self._target(route, call, result)
            note_outcome(scope, created=written_id(route.method, result), target_tenant=target)
            if isinstance(result, Binary):
                await _send_binary(send, route.status, result)
            else:
                await send_bytes(send, route.status, _dump(result), _JSON_HEADERS)
        finally:
            if isinstance(result, Binary) and result.done is not None:
                result.done()

    def _target(self, route: Route, call: Call, result: Result) -> str | None:
        # The tenant a platform call acted on, for its audit event (`bulkhead.admin.facts`).
        facts = (call.params, call.query, call.body)
        return target_tenant(call.ctx, route.path, facts, result, self.tenant_ids)

    async def _grant(
        self, route: Route, call: Call, env: Environment, scope: Scope
    ) -> tuple[AccessRequest | None, Call]:
        """The caller's live grant for a privileged route (consumed if single-use), or refuse."""
        if not route.privileged:
            return None, call
        target = await route.grant_target(call)
        if isinstance(target, Exempt):
            exchange(scope).finding([f"no_grant_needed:{target.reason}"])
            return None, replace(call, exempt=target)
        action, ctx = route.needs, call.ctx
        if self.access is None:  # Fail closed: no grants can exist without the service.
            raise PermissionDenied(f"'{action}' needs a grant and none can be issued here.")
        tenant_id = None
        privilege = PRIVILEGED.get(action)
        on_tenant = privilege is None or privilege.tenant_scoped  # not a principal's name
        if target != PLATFORM_TARGET and self.tenant_ids is not None and on_tenant:
            tenant_id = self.tenant_ids(target)
            # The tenant the grant names is the tenant the call acts on, for its audit event,
            # refused or not (a quota request named by its id, say).
            note_outcome(scope, created=None, target_tenant=tenant_id)
        if tenant_id is not None:
            live = self.access.live_grants
            grants = await asyncio.to_thread(live, ctx.principal.id, action)
            held = replace(ctx, attributes={**ctx.attributes, "grants": sorted(grants)})
            resource = Resource(tenant_id=tenant_id, kind="tenant")
            try:
                self.authorizer.authorize(held, action, resource=resource, env=env)
            except PermissionDenied as exc:
                denied = refusal(action, target)
                denied.policy = exc.policy
                raise denied from None
        # An unknown tenant holds no grant: `use` refuses it the same way.
        return await asyncio.to_thread(self.access.use, ctx, action, target), call
