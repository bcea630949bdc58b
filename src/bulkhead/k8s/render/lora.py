"""A tenant's fine-tuned adapters, served by a vLLM of their base model in its namespace.

A fine-tuned model is in the catalog as a model of worker kind `LORA_WORKER` owned by the
tenant (`ft:<base>:<tenant>:<suffix>:<job>`), whose deployment options name its adapter's
encrypted artifact (`ADAPTER_OPTION`) and its base (`BASE_OPTION`: a bundled model's name,
or `artifact:<id>` for an imported one).  These names are the catalog's: they are kept
in one place (`views`), to be aligned with the registration.

On Kubernetes the base's vLLM Deployment in `bh-<t>-serve` serves them too: it starts
with `--enable-lora --max-lora-rank R --max-loras N --lora-modules <name>=<dir> ...` (R the
largest rank the tenant's tier may train, N the number of adapters), and for each adapter
an init container of the Bulkhead image pulls and decrypts its artifact
(`bulkhead model pull`, the same route as the weights) into a memory-backed emptyDir of
its own, mounted read-only into vLLM at `ADAPTERS_DIR/<artifact>`.  Each adapter's pull
key is its own Secret (`workloads.pull_secret(<ft name>)`, minted by `bulkhead k8s
pull-secret` for that model: a pull key is limited to one model).  A hash of the adapter
list is a pod-template annotation, so a new or removed adapter rolls the Deployment.

A base the tenant does not run in its namespace (a shared model, for a tier without
dedicated servers) gets a private vLLM Deployment there for its adapters: an adapter is
the tenant's alone and is never loaded into a server other tenants reach.  An adapter
whose base is not in the catalog is left out (it cannot be served without its base).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

from bulkhead.finetune.contract import HYPER_BOUNDS
from bulkhead.k8s.render.views import (
    ADAPTER_OPTION,
    BASE_ARTIFACT_PREFIX,
    BASE_OPTION,
    LORA_WORKER,
    ModelView,
    TenantView,
)

__all__ = ["ADAPTER_OPTION", "BASE_OPTION", "LORA_WORKER", "adapters_by_base", "lora_args"]
ADAPTERS_DIR: Final = "/adapters"
ADAPTERS_ANNOTATION: Final = "bulkhead.dev/lora-adapters"


def is_adapter(model: ModelView) -> bool:
    return model.worker == LORA_WORKER


def adapters_by_base(
    tenant: TenantView, models: Sequence[ModelView]
) -> dict[str, tuple[ModelView, list[ModelView]]]:
    """The tenant's adapters grouped by their base: base name -> (base, adapters by name)."""
    found: dict[str, tuple[ModelView, list[ModelView]]] = {}
    for adapter in sorted(models, key=lambda m: m.name):
        if not (is_adapter(adapter) and adapter.owner == tenant.name and adapter.artifact):
            continue
        base = base_of(adapter, models)
        if base is not None:
            found.setdefault(base.name, (base, []))[1].append(adapter)
    return found


def base_of(adapter: ModelView, models: Sequence[ModelView]) -> ModelView | None:
    """The local, non-adapter model an adapter's `base` option names, if there is one."""
    wanted = adapter.base or ""
    for model in models:
        if not model.local or is_adapter(model):
            continue
        if wanted.startswith(BASE_ARTIFACT_PREFIX):
            if model.artifact == wanted.removeprefix(BASE_ARTIFACT_PREFIX):
                return model
        elif model.name == wanted:
            return model
    return None


def adapter_dir(adapter: ModelView) -> str:
    return f"{ADAPTERS_DIR}/{adapter.artifact}"


def adapter_volume(adapter: ModelView) -> str:
    return "adapter-" + hashlib.sha256(str(adapter.artifact).encode()).hexdigest()[:24]


def lora_args(tenant: TenantView, adapters: Sequence[ModelView]) -> list[str]:
    """vLLM's flags for the adapters (none without adapters)."""
    if not adapters:
        return []
    rank = HYPER_BOUNDS[tenant.tier].lora_rank[1]
    modules = [f"{a.name}={adapter_dir(a)}" for a in adapters]
    return [
        "--enable-lora",
        "--max-lora-rank",
        str(rank),
        "--max-loras",
        str(len(adapters)),
        "--lora-modules",
        *modules,
    ]


def adapters_annotation(adapters: Sequence[ModelView]) -> dict[str, str]:
    """The pod-template annotation that changes with the adapter list (none without)."""
    if not adapters:
        return {}
    listed = "\n".join(f"{a.name}={a.artifact}" for a in adapters)
    return {ADAPTERS_ANNOTATION: hashlib.sha256(listed.encode()).hexdigest()}


def adapter_mounts(adapters: Sequence[ModelView]) -> list[dict[str, Any]]:
    return [
        {"name": adapter_volume(a), "mountPath": adapter_dir(a), "readOnly": True} for a in adapters
    ]
