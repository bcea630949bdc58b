"""/tenant/v1/model-artifacts/{artifact}: a tenant's imported model, decrypted, for its own server.

On Kubernetes a private model's server gets its weights from an init container
(`bulkhead artifacts pull`, rendered by `bulkhead.k8s.render`) that asks here
with a credential of the model's own tenant and writes them into a
memory-backed volume, so the plaintext never lands on a node's disk.

`tenant:models.artifacts.pull` is not a read: tenant admins and model
developers may pull, auditors and end users may not.  A key limited to some
models pulls only those models' artifacts; an artifact of another tenant, or
of a model the key may not use, answers "not found" like one that does not
exist.  The pull is then authorized again with the model itself as the
resource (its classification, sensitivity and region, and the tenant's own
policies), as a call of the model is: a caller whose clearance is below the
model's never gets its weights.  The answer is the length-prefixed frames of
`bulkhead.runtime.worker.frames` (the format an import uploads), sent only
once the pull is on the audit record.
"""

from __future__ import annotations

import asyncio
import contextlib

from bulkhead.admin.audit import caller_of
from bulkhead.admin.deps import need
from bulkhead.admin.router import Binary, Call, Route
from bulkhead.admin.rules import tenant_id
from bulkhead.errors import NotFound
from bulkhead.policy import Resource, model_resource
from bulkhead.runtime.worker import frames

PULL = "tenant:models.artifacts.pull"


async def artifact_model(call: Call) -> Resource:
    """The model the artifact is of, as policy sees it; "not found" where the caller may
    not know of it (another tenant's, a model the key is not limited to, a removed model)."""
    tid, artifact_id = tenant_id(call.ctx), call.params["artifact"]
    store = need(call.services.artifacts, "artifact store")
    artifact = await asyncio.to_thread(store.get, tid, artifact_id)
    allowed = call.ctx.key_models
    resolved = call.services.catalog.snapshot.models_for(tid).get(artifact.model_name)
    if (
        (allowed is not None and artifact.model_name not in allowed)
        or resolved is None
        or resolved.model.owner_tenant_id != tid
    ):
        raise NotFound(f"No such model artifact: {artifact_id}")
    return model_resource(resolved.model, call.ctx.tenant)


async def pull(call: Call) -> Binary:
    # `artifact_model` ran first (the route's `resource`): the caller may have this one.
    # A pull holds the whole model in memory until it is sent, so a tenant runs one at a
    # time and the gateway two (more answer 429): its slot is held until the bytes are out.
    tid, artifact_id = tenant_id(call.ctx), call.params["artifact"]
    store = need(call.services.artifacts, "artifact store")
    held = contextlib.ExitStack()
    held.enter_context(call.services.artifact_pulls.slot(caller_of(call.ctx)))
    try:
        files = await asyncio.to_thread(store.load, tid, artifact_id)
        return Binary(list(frames.encode(files)), done=held.close)
    except BaseException:
        held.close()
        raise


ROUTES = (
    Route.get(
        "/tenant/v1/model-artifacts/{artifact}",
        action=PULL,
        handler=pull,
        summary="Pull an imported model's files, decrypted, as length-prefixed frames (for the "
        "model's own server; tenant admins and model developers)",
        response=None,
        binary=True,
        resource=artifact_model,
    ),
)
