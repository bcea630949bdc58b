"""Step 7 for `DELETE /v1/models/{model}`: a tenant deletes one of its fine-tuned models.

OpenAI's delete of a fine-tuned model, always in the caller's tenant: the
name is resolved as a model call resolves it (`authorize.resolve_model`), so
another tenant's model, a model not granted or outside the key's scope is
"not found", the same as one that does not exist; the Cedar policies then
judge `v1:models.delete` on the model itself (tenant admins and model
developers; `platform.model-deleters` keeps end users out).  Only the
tenant's own `ft:` model (`finetune.publish.tuned_adapter`) may go: a
platform model answers 403, any other model of the tenant 400.  The answer is
`{"id": ..., "object": "model", "deleted": true}`; the request's own audit
event names the model.
"""

from __future__ import annotations

import asyncio

from bulkhead.errors import NotFound
from bulkhead.finetune.publish import delete_tuned
from bulkhead.gateway.authorize import resolve_model
from bulkhead.gateway.endpoints import endpoint_of
from bulkhead.policy import Authorizer, Environment, model_resource
from bulkhead.store import Catalog
from bulkhead.store.artifacts import ArtifactService
from bulkhead.web.responses import send_json
from bulkhead.web.scope import Receive, Scope, Send, context, exchange

ACTION = "v1:models.delete"


class ModelsEndpoints:
    def __init__(
        self, *, artifacts: ArtifactService | None, catalog: Catalog, authorizer: Authorizer
    ):
        self.artifacts, self.catalog, self.authorizer = artifacts, catalog, authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx, endpoint, ex = context(scope), endpoint_of(scope), exchange(scope)
        if ctx.tenant is None or endpoint is None:  # pragma: no cover - authorize admits neither
            raise NotFound("not found")
        name = endpoint.params(scope["path"])["model"]
        resolved = resolve_model(ctx, self.catalog, name)
        ex.names(model=resolved.model.name, resource=resolved.model.name)
        resource = model_resource(resolved.model, ctx.tenant)
        env = Environment(client_ip=ex.client)
        self.authorizer.authorize(ctx, ACTION, resource=resource, env=env)
        if self.artifacts is None:  # pragma: no cover - `build` always gives one
            raise NotFound(f"The model '{name}' cannot be deleted here.")
        tenant_id = ctx.tenant.id
        await asyncio.to_thread(
            delete_tuned, self.artifacts, tenant_id, resolved, self.catalog.reload
        )
        await send_json(send, 200, {"id": resolved.model.name, "object": "model", "deleted": True})
