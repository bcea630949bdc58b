"""A tenant's Kubernetes objects, rendered from the catalog: plain dicts, sorted.

`render_tenant` gives one tenant's namespaces, quotas, limit ranges, network
policies, service accounts, admin role, the gateway's role in its training
namespace and model servers (`render_training_job` one fine-tuning Job); `render_all` every
tenant's and the platform-wide GPU objects (the mig-parted ConfigMap).  The
order is fixed: kinds in the order they must be applied, then namespace and
name, so the same catalog always renders the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bulkhead.errors import InvalidRequest
from bulkhead.k8s.config import K8sConfig
from bulkhead.k8s.render.gpu import mig_plan, node_labels, render_gpu
from bulkhead.k8s.render.lora import adapters_by_base
from bulkhead.k8s.render.names import model_object, serve_namespace, train_namespace
from bulkhead.k8s.render.network import render_network
from bulkhead.k8s.render.tenancy import admins_group, render_tenancy
from bulkhead.k8s.render.training import (
    job_name,
    render_gateway_training_access,
    render_training_job,
)
from bulkhead.k8s.render.views import ModelView, TenantView, served_models
from bulkhead.k8s.render.workloads import pull_secret, render_gateway_ca, render_model

KIND_ORDER = (
    "Namespace",
    "ServiceAccount",
    "ResourceQuota",
    "LimitRange",
    "Role",
    "RoleBinding",
    "NetworkPolicy",
    "ConfigMap",
    "Service",
    "Deployment",
    "Job",
)


def object_key(item: dict[str, Any]) -> tuple[int, str, str]:
    kind = item["kind"]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    meta = item["metadata"]
    return rank, str(meta.get("namespace", "")), str(meta["name"])


def render_tenant(
    tenant: TenantView, models: Sequence[ModelView], config: K8sConfig
) -> list[dict[str, Any]]:
    """Every object of one tenant, sorted."""
    out = render_tenancy(tenant, config) + render_network(tenant, config)
    out += render_gateway_training_access(tenant, config)
    out += render_gateway_ca(tenant, config)
    adapters = adapters_by_base(tenant, tuple(models))
    served = {m.name: m for m in served_models(tenant, tuple(models))}
    # A base the tenant does not run here gets a private server for its adapters.
    served |= {name: base for name, (base, _) in adapters.items() if name not in served}
    for name, model in sorted(served.items()):
        out += render_model(tenant, model, config, adapters.get(name, (model, []))[1])
    return _sorted(out)


def render_all(
    tenants: Sequence[TenantView], models: Sequence[ModelView], config: K8sConfig
) -> list[dict[str, Any]]:
    """Every tenant's objects and the platform-wide GPU objects, sorted."""
    out: list[dict[str, Any]] = []
    for tenant in tenants:
        out += render_tenant(tenant, models, config)
    out += render_gpu(tenants, config)
    return _sorted(out)


def _sorted(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = [(object_key(o), o["kind"]) for o in objects]
    seen: set[tuple[tuple[int, str, str], str]] = set()
    for key in keys:
        if key in seen:
            kind, (_, namespace, name) = key[1], key[0]
            raise InvalidRequest(
                f"Two objects would be {kind} {namespace}/{name}: two tenants or models "
                "render the same name.",
                param="name",
            )
        seen.add(key)
    return sorted(objects, key=lambda o: (object_key(o), o["kind"]))


__all__ = [
    "KIND_ORDER",
    "ModelView",
    "TenantView",
    "admins_group",
    "job_name",
    "mig_plan",
    "model_object",
    "node_labels",
    "object_key",
    "pull_secret",
    "render_all",
    "render_gateway_training_access",
    "render_gpu",
    "render_tenant",
    "render_training_job",
    "serve_namespace",
    "served_models",
    "train_namespace",
]
