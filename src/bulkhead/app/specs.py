"""Worker specs: the local workers the catalog wants, each on its sandbox and device."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

from bulkhead.domain import DeploymentKind, Tier
from bulkhead.runtime import WorkerSpec
from bulkhead.runtime.gpu import Device, Want, place
from bulkhead.runtime.worker.adapter_format import BASE_BUNDLED, BASE_PREFIX
from bulkhead.store import Snapshot
from bulkhead.store.artifacts import BASE_ARTIFACT, BASE_OPTION, LORA_WORKER, ArtifactService
from bulkhead.store.artifacts import OPTION as ARTIFACT_OPTION

WeightsLoader = Callable[[], Sequence[tuple[str, bytes | bytearray]]]


def lora_files(
    artifacts: ArtifactService, owner: str, adapter: str, base: str
) -> list[tuple[str, bytes | bytearray]]:
    """A fine-tuned model's frames: its adapter's files, then its base (`runtime.worker.lora`):
    the bundled model's name, or the owner's imported base decrypted like the adapter."""
    files: list[tuple[str, bytes | bytearray]] = list(artifacts.load(owner, adapter))
    if base.startswith(BASE_ARTIFACT):
        loaded = artifacts.load(owner, base.removeprefix(BASE_ARTIFACT))
        return files + [(BASE_PREFIX + name, data) for name, data in loaded]
    return [*files, (BASE_BUNDLED, base.encode())]


def _usable(snapshot: Snapshot, deployment_id: str, owner: str | None) -> bool:
    """Whether the owner may call this deployment (the catalog hides a tuned model whose
    base the tenant may no longer use)."""
    models = snapshot.visible.get(owner or "", {})
    return any(m.deployment.id == deployment_id for m in models.values())


def local_specs(
    snapshot: Snapshot,
    artifacts: ArtifactService | None = None,
    gpus: Sequence[Device] = (),
) -> list[WorkerSpec]:
    """The workers the catalog wants, each on its tier's sandbox and device (`runtime.gpu`)."""
    specs = []
    for r in snapshot.deployments:
        if r.deployment.kind is not DeploymentKind.LOCAL:
            continue
        source = r.deployment.options.get(ARTIFACT_OPTION, "")
        owner = r.model.owner_tenant_id
        if r.deployment.worker == LORA_WORKER and not _usable(snapshot, r.deployment.id, owner):
            continue  # its base's grant was revoked: nobody may call it, so no worker runs
        tenant = snapshot.tenants.get(owner) if owner is not None else None
        loader: WeightsLoader | None = None
        if source and owner is not None and artifacts is not None:
            # Decrypts in the gateway and checks every file's SHA-256; the worker gets
            # the bytes over its stdin, never a path.
            loader = functools.partial(artifacts.load, owner, source)
            if r.deployment.worker == LORA_WORKER:  # the adapter, with its base
                base = r.deployment.options.get(BASE_OPTION, "")
                loader = functools.partial(lora_files, artifacts, owner, source, base)
        specs.append(
            WorkerSpec(
                key=r.deployment.id,
                kind=r.deployment.worker or "",
                model_name=r.model.name,
                source=source,
                load_weights=loader,
                tenant=owner,
                # The owner's tier picks the worker's sandbox limits; shared models run shared.
                tier=tenant.tier if tenant is not None else Tier.SHARED,
            )
        )
    if not gpus:
        return specs
    placed = place(gpus, [Want(s.key, s.tenant, s.tier) for s in specs])
    return [
        dataclasses.replace(s, device_env=a.env()) if (a := placed.get(s.key)) else s for s in specs
    ]
