"""A succeeded job's adapter becomes the tenant's fine-tuned model (`FineTuning.on_adapter`).

The adapter's files are checked and encrypted under the tenant's KEK, and the
model ``ft:<base>:<tenant>:<suffix>:<job id>`` is registered as the tenant's
private model (chat and completions) with a LOCAL deployment of worker
``hf-causal-lora`` whose options name the adapter artifact and the base, all in
one transaction (`ArtifactService.import_adapter`).  The catalog is then
reloaded, so the model is listed at once and the application's catalog poll
starts its worker.  Any failure raises, nothing is left behind, and the job
fails with the reason instead of succeeding.  A job cancelled while its adapter
was being stored gets no model: what was stored is removed again (a cancel in
the last moment between that check and the job's move to `succeeded` is not
caught).

`delete_tuned` is the way back (`DELETE /v1/models/{model}`): only the
tenant's own fine-tuned model, its deployment, model and adapter rows in one
transaction, then the adapter's blobs; the catalog reload stops its worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bulkhead.domain import ResolvedModel
from bulkhead.errors import InvalidRequest, ModelNotFound, NotFound, PermissionDenied
from bulkhead.finetune.service import base_of, fine_tuned_name
from bulkhead.store import repo
from bulkhead.store.artifacts import LORA_WORKER, ArtifactService
from bulkhead.store.artifacts import OPTION as ADAPTER_OPTION
from bulkhead.store.finetune import JobInfo


class Publisher:
    """`on_adapter` for `FineTuning`: store, register, reload."""

    def __init__(
        self,
        artifacts: ArtifactService,
        resolve: Callable[[str, str], ResolvedModel | None],
        reload: Callable[[], object],
        running: Callable[[JobInfo], bool] = lambda job: True,
    ):
        self.artifacts, self.resolve, self.reload = artifacts, resolve, reload
        self.running = running  # whether the job is still running (not cancelled meanwhile)

    def __call__(self, job: JobInfo, adapter: Sequence[tuple[str, bytes]]) -> None:
        resolved = self.resolve(job.tenant_id, job.model)
        if resolved is None:
            message = f"The base model '{job.model}' is no longer granted to the tenant."
            raise InvalidRequest(message)
        name = fine_tuned_name(job)
        if not repo.MODEL_NAME.fullmatch(name):
            raise InvalidRequest(
                f"The fine-tuned model's name would be over 128 characters ({name[:40]}…): "
                "use a shorter suffix or base model name."
            )
        made = self.artifacts.import_adapter(job.tenant_id, name, base_of(resolved), adapter)
        if not self.running(job):  # cancelled while the adapter was stored: no model for it
            self.artifacts.remove_adapter(job.tenant_id, made.id, name)
            raise InvalidRequest("The job was cancelled while its adapter was stored.")
        self.reload()


def tuned_adapter(tenant_id: str, resolved: ResolvedModel) -> str:
    """The adapter artifact of `resolved` if it is `tenant_id`'s own fine-tuned model; a
    403 for a platform (shared) model, a 400 for the tenant's other models."""
    model, deployment = resolved.model, resolved.deployment
    if model.owner_tenant_id != tenant_id:
        raise PermissionDenied(
            f"The model '{model.name}' is a platform model: only the tenant's own "
            "fine-tuned models can be deleted.",
            param="model",
            code="model_not_deletable",
        )
    artifact = deployment.options.get(ADAPTER_OPTION)
    if not model.name.startswith("ft:") or deployment.worker != LORA_WORKER or not artifact:
        raise InvalidRequest(
            f"The model '{model.name}' is not a fine-tuned model: only fine-tuned models "
            "can be deleted here.",
            param="model",
            code="model_not_deletable",
        )
    return str(artifact)


def delete_tuned(
    artifacts: ArtifactService,
    tenant_id: str,
    resolved: ResolvedModel,
    reload: Callable[[], object],
) -> None:
    """Delete the tenant's fine-tuned model: the deployment, the model and the adapter's rows
    in one transaction, then its blobs (`ArtifactService.remove_adapter`); reload."""
    artifact = tuned_adapter(tenant_id, resolved)
    try:
        artifacts.remove_adapter(tenant_id, artifact, resolved.model.name)
    except NotFound:  # deleted meanwhile (through another replica)
        raise ModelNotFound(resolved.model.name) from None
    reload()
