"""Step 3: decide whether this caller may take this action on this resource.

For the model API the resource is the model named in the body: a model the
caller's tenant may not use, or that the key is not scoped to, answers
`model_not_found`, the same as a model that does not exist, so its existence
never leaks.  Platform and tenant APIs get a coarse gate here: the actions
`admin:surface` / `tenant:surface`, decided like every other action by the
`Authorizer` (the Cedar policies `platform.surface.*` say which credential
may use which surface, and name themselves in the audit event); their routers
then check each route's action through the same `Authorizer`.  No allow or
deny is decided here by hand: the former direct checks (platform API needs a
platform credential, tenant API a tenant one, platform credentials cannot
call models) are those policies now.  The web console (`/console`) is a
surface of its own, `console:surface`, let in by `platform.surface.console`.
"""

from __future__ import annotations

from bulkhead.domain import ResolvedModel, TenantContext
from bulkhead.errors import InvalidRequest, MethodNotAllowed, ModelNotFound, NotFound
from bulkhead.gateway.endpoints import V1Endpoint, allowed, endpoint_of
from bulkhead.policy import Authorizer, Environment, model_resource
from bulkhead.store import Catalog
from bulkhead.web.scope import (
    MODEL,
    ASGIApp,
    Exchange,
    Receive,
    Scope,
    Send,
    context,
    exchange,
    json_body,
    set_once,
)


def resolve_model(ctx: TenantContext, catalog: Catalog, name: object) -> ResolvedModel:
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'model' is required and must be a string.", param="model")
    if ctx.tenant is None:
        raise ModelNotFound(name)
    resolved = catalog.snapshot.models_for(ctx.tenant.id).get(name)
    if resolved is None or (ctx.key_models is not None and name not in ctx.key_models):
        raise ModelNotFound(name)
    return resolved


class AuthorizationMiddleware:
    def __init__(
        self, app: ASGIApp, *, authorizer: Authorizer, catalog: Catalog, public: frozenset[str]
    ):
        self.app = app
        self.authorizer = authorizer
        self.catalog = catalog
        self.public = public

    def _v1(self, scope: Scope, ctx: TenantContext, ex: Exchange) -> None:
        endpoint: V1Endpoint | None = endpoint_of(scope)
        if endpoint is None:
            methods = allowed(scope["path"])
            if methods:
                raise MethodNotAllowed(
                    f"{scope['path']} does not take {scope['method']}.", allow=methods
                )
            raise NotFound(f"Unknown endpoint: {scope['method']} {scope['path']}")
        ex.names(action=endpoint.action)
        env = Environment(client_ip=ex.client)
        # Platform credentials are refused here by `platform.surface.models-need-a-tenant-key`.
        self.authorizer.authorize(ctx, endpoint.action, env=env)
        if endpoint.model is None:
            return
        body = json_body(scope)
        resolved = resolve_model(ctx, self.catalog, body.get("model"))
        ex.names(model=resolved.model.name, resource=resolved.model.name)
        # Again with the model itself: its owner, classification, sensitivity, region.
        resource = model_resource(resolved.model, ctx.tenant)
        self.authorizer.authorize(ctx, endpoint.action, resource=resource, env=env)
        if endpoint.model not in resolved.model.endpoints:
            raise InvalidRequest(
                f"The model '{resolved.model.name}' does not support {endpoint.model.value}.",
                param="model",
            )
        set_once(scope, MODEL, resolved)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        ctx, ex, path = context(scope), exchange(scope), scope["path"]
        if path.startswith("/v1/"):
            ex.names(surface="v1")
            self._v1(scope, ctx, ex)
        elif path == "/openapi.json":
            ex.names(surface="docs")
        elif path == "/console" or path.startswith("/console/"):
            # The web console's pages and session: the console names each route's own action.
            ex.names(surface="console", action="console:surface")
            env = Environment(client_ip=ex.client)
            self.authorizer.authorize(ctx, "console:surface", env=env)
        elif path.startswith(("/admin/v1/", "/tenant/v1/")):
            surface = path.split("/", 2)[1]
            action = f"{surface}:surface"  # The router names the route's own action.
            ex.names(surface=surface, action=action)
            self.authorizer.authorize(ctx, action, env=Environment(client_ip=ex.client))
        else:
            raise NotFound(f"Unknown endpoint: {scope['method']} {path}")
        await self.app(scope, receive, send)
