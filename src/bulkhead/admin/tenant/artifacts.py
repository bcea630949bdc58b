"""/tenant/v1/model-artifacts/{artifact}: a tenant's imported model, decrypted, for its own server.

On Kubernetes a private model's server gets its weights from an init container
(`bulkhead artifacts pull`, rendered by `bulkhead.k8s.render`) that asks here
with a credential of the model's own tenant and writes them into a
memory-backed volume, so the plaintext never lands on a node's disk.

`tenant:models.artifacts.pull` is not a read: tenant admins and model
developers may pull, auditors and end users may not.  A key limited to some
models pulls only those models' artifacts; an artifact of another tenant, or
of a model the key may not use, answers "not found" like one that does not
exist.  The answer is the length-prefixed frames of
`bulkhead.runtime.worker.frames` (the format an import uploads), sent only
once the pull is on the audit record.
"""

from __future__ import annotations

import asyncio

from bulkhead.admin.deps import need
from bulkhead.admin.router import Binary, Call, Route
from bulkhead.admin.rules import tenant_id
from bulkhead.errors import NotFound
from bulkhead.runtime.worker import frames

PULL = "tenant:models.artifacts.pull"


async def pull(call: Call) -> Binary:
    tid, artifact_id = tenant_id(call.ctx), call.params["artifact"]
    store = need(call.services.artifacts, "artifact store")
    artifact = await asyncio.to_thread(store.get, tid, artifact_id)
    allowed = call.ctx.key_models
    if allowed is not None and artifact.model_name not in allowed:
        raise NotFound(f"No such model artifact: {artifact_id}")
    files = await asyncio.to_thread(store.load, tid, artifact_id)
    return Binary(list(frames.encode(files)))


ROUTES = (
    Route.get(
        "/tenant/v1/model-artifacts/{artifact}",
        action=PULL,
        handler=pull,
        summary="Pull an imported model's files, decrypted, as length-prefixed frames (for the "
        "model's own server; tenant admins and model developers)",
        response=None,
        binary=True,
    ),
)
