"""Importing a tenant's own model: its files are encrypted into the tenant's store.

The CLI uploads a Hugging Face-format directory in one request, as the
length-prefixed frames of `bulkhead.runtime.worker.frames`; the model is
registered as the tenant's private model, served by a local worker that gets
the decrypted files in memory.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from bulkhead.admin import answers
from bulkhead.admin.deps import need
from bulkhead.admin.router import Call, Route
from bulkhead.errors import InvalidRequest
from bulkhead.runtime.worker import frames
from bulkhead.store import repo
from bulkhead.store.artifacts import WORKER, Artifact

PATH = "/admin/v1/tenants/{name}/model-artifacts"


def decode_upload(raw: bytes) -> list[tuple[str, bytes]]:
    stream = io.BytesIO(raw)
    try:
        files = frames.decode(stream)
    except (frames.FrameError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"The upload is not a valid model upload: {exc}.") from None
    if stream.read(1):
        raise InvalidRequest("The upload has trailing bytes after its last file.")
    return files


def artifact_json(tenant: str, artifact: Artifact) -> dict[str, Any]:
    return {
        "object": "model.artifact",
        "id": artifact.id,
        "tenant": tenant,
        "model": artifact.model_name,
        "worker": WORKER,
        "created_at": artifact.created_at.isoformat(),
        "files": [{"name": f.name, "bytes": f.bytes, "sha256": f.sha256} for f in artifact.files],
    }


async def import_model(call: Call) -> dict[str, Any]:
    model = call.query.get("model", "")
    if not model:
        raise InvalidRequest("Name the model: ?model=NAME.", param="model")
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    # Splitting a body of up to BULKHEAD_MAX_MODEL_BYTES copies it: not on the event loop.
    files = await asyncio.to_thread(decode_upload, call.body)
    artifact = await asyncio.to_thread(
        need(call.services.artifacts, "artifact store").import_model, tenant, model, files
    )
    del files
    # Reload before answering: the worker starts, and the model resolves, at once.
    await asyncio.to_thread(call.services.control.catalog.reload)
    return artifact_json(tenant.name, artifact)


ROUTES = (
    Route.post(
        "/admin/v1/tenants/{name}/model-artifacts",
        action="admin:models.import",
        handler=import_model,
        summary="Import a tenant's private model (safetensors only), encrypted at rest",
        response=answers.ArtifactOut,
        status=201,
        raw=True,
    ),
)
