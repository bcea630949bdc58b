"""Worker specs: the local workers the catalog wants, each on its sandbox and device."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

from bulkhead.domain import DeploymentKind, Tier
from bulkhead.runtime import WorkerSpec
from bulkhead.runtime.gpu import Device, Want, place
from bulkhead.store import Snapshot
from bulkhead.store.artifacts import OPTION as ARTIFACT_OPTION
from bulkhead.store.artifacts import ArtifactService


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
        tenant = snapshot.tenants.get(owner) if owner is not None else None
        loader = None
        if source and owner is not None and artifacts is not None:
            # Decrypts in the gateway and checks every file's SHA-256; the worker gets
            # the bytes over its stdin, never a path.
            loader = functools.partial(artifacts.load, owner, source)
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
