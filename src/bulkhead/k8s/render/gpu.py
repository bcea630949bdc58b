"""The platform-wide MIG layout: one mig-parted ConfigMap for every `mig` tenant's instances.

Each active `mig` tenant gets `mig_instances` instances of the configured
profile; the planner (`bulkhead.runtime.gpu.plan`) lays them out on the
fewest GPUs of the configured model that hold them, or says why none can.
The ConfigMap is what NVIDIA's mig-manager reads; a node takes the layout
when it is labelled `nvidia.com/mig.config=<config name>` (`node_labels`).
Bulkhead never changes MIG mode or instances itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bulkhead.domain import Tier
from bulkhead.errors import InvalidRequest
from bulkhead.k8s.config import K8sConfig
from bulkhead.k8s.render.names import GPU, labels, meta, obj
from bulkhead.k8s.render.views import TenantView
from bulkhead.runtime.gpu import MigPlan, mig_parted_config, plan

MIG_CONFIG_LABEL = "nvidia.com/mig.config"
CONFIGMAP = "bh-mig-parted"
MAX_GPUS = 16  # the planner's own bound


def mig_instances(tenants: Sequence[TenantView]) -> int:
    """How many instances the planner must place: each active `mig` tenant's."""
    return sum(
        t.compute("mig_instances") for t in tenants if t.tier is Tier.MIG and t.status == "active"
    )


def mig_plan(tenants: Sequence[TenantView], config: K8sConfig) -> MigPlan | None:
    """The layout on the fewest GPUs, or None when no tenant needs an instance."""
    count = mig_instances(tenants)
    if count == 0:
        return None
    model, profiles = config.gpu(), [config.mig_profile] * count
    last: InvalidRequest | None = None
    for gpus in range(1, MAX_GPUS + 1):
        try:
            return plan(model, profiles, gpus=gpus)
        except InvalidRequest as exc:
            last = exc
    raise InvalidRequest(
        f"The mig tenants' {count} x {config.mig_profile} do not fit on {MAX_GPUS} GPUs "
        f"of {model.title}: {last.message if last else ''}",
        param="mig_instances",
    )


def node_labels(config: K8sConfig) -> dict[str, str]:
    """The label each MIG node needs for mig-manager to apply the rendered layout."""
    return {MIG_CONFIG_LABEL: config.mig_config_name}


def render_gpu(tenants: Sequence[TenantView], config: K8sConfig) -> list[dict[str, Any]]:
    found = mig_plan(tenants, config)
    if found is None:
        return []
    annotations = {
        "bulkhead.dev/gpus": str(len(found.layouts)),
        "bulkhead.dev/gpu-model": found.model.key,
        "bulkhead.dev/node-labels": ",".join(f"{k}={v}" for k, v in node_labels(config).items()),
    }
    metadata = meta(CONFIGMAP, config.platform_namespace, labels(None, GPU))
    metadata["annotations"] = annotations
    text = mig_parted_config(found, name=config.mig_config_name)
    return [obj("v1", "ConfigMap", metadata, data={"config.yaml": text})]
