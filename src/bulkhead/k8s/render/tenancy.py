"""A tenant's namespaces, their quotas and limit ranges, service accounts and admin role.

Both namespaces enforce (and audit and warn on) Pod Security `restricted`.
Each gets the tenant's compute limits as its ResourceQuota (the limits are
per namespace), every extended GPU resource included: whole GPUs and every
MIG profile of the platform's GPU model, at 0 where the tier has none, so no
pod can take a device its quota does not name.  The tenant's admins may only
read pods, their logs and events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulkhead.domain import Tier
from bulkhead.k8s.config import K8sConfig
from bulkhead.k8s.render.names import (
    MODEL_SERVER,
    TRAINING,
    VECTOR_STORE,
    labels,
    meta,
    obj,
    serve_namespace,
    train_namespace,
)
from bulkhead.k8s.render.views import TenantView

ADMIN_ROLE = "bh-tenant-admin"
POD_SECURITY = {
    f"pod-security.kubernetes.io/{mode}{suffix}": value
    for mode in ("enforce", "audit", "warn")
    for suffix, value in (("", "restricted"), ("-version", "latest"))
}
# Per namespace: the service accounts its components run as ("default" too, so
# nothing in it gets a token mounted).
ACCOUNTS = {"serve": ("default", MODEL_SERVER, VECTOR_STORE), "train": ("default", TRAINING)}


def admins_group(tenant: str) -> str:
    return f"bulkhead:tenant:{tenant}:admins"


def account_name(component: str) -> str:
    return component if component == "default" else f"bh-{component}"


def namespaces(tenant: TenantView) -> list[tuple[str, str]]:
    """(namespace, its role) for the tenant: serve and train."""
    return [(serve_namespace(tenant.name), "serve"), (train_namespace(tenant.name), "train")]


def render_tenancy(tenant: TenantView, config: K8sConfig) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for namespace, role in namespaces(tenant):
        out.append(_namespace(tenant, namespace, role))
        out.append(_quota(tenant, namespace, role, config))
        out.append(_limit_range(tenant, namespace, role, config))
        out.extend(_account(tenant, namespace, c) for c in ACCOUNTS[role])
        out.extend(_admin_role(tenant, namespace))
    return out


def _namespace(tenant: TenantView, name: str, role: str) -> dict[str, Any]:
    found = labels(tenant.name, **POD_SECURITY, **{"bulkhead.dev/namespace-role": role})
    return obj("v1", "Namespace", meta(name, None, found))


def _mib(value: int) -> str:
    return f"{value}Mi"


def namespace_share(tenant: TenantView, role: str, config: K8sConfig) -> Callable[[str], int]:
    """A compute limit as this namespace's part of it: train gets `train_share_percent`
    (rounded down), serve the rest, so the two quotas add up to the tenant's limit."""

    def share(name: str) -> int:
        whole = tenant.compute(name)
        train = whole * config.train_share_percent // 100
        return train if role == "train" else whole - train

    return share


def _quota(tenant: TenantView, namespace: str, role: str, config: K8sConfig) -> dict[str, Any]:
    c = namespace_share(tenant, role, config)
    cpu, memory, disk = (
        f"{c('cpu_millicores')}m",
        _mib(c("memory_mib")),
        _mib(c("ephemeral_storage_mib")),
    )
    hard: dict[str, str] = {
        "requests.cpu": cpu,
        "limits.cpu": cpu,
        "requests.memory": memory,
        "limits.memory": memory,
        "requests.ephemeral-storage": disk,
        "limits.ephemeral-storage": disk,
        "pods": str(c("pods")),
        "services": str(c("services")),
        "services.loadbalancers": "0",
        "services.nodeports": "0",
        "secrets": str(c("secrets")),
        "persistentvolumeclaims": str(c("pvcs")),
        "requests.storage": _mib(c("pvc_storage_mib")),
        "requests.nvidia.com/gpu": str(c("gpus")),
    }
    for profile in mig_resources(config):
        mine = tenant.tier is Tier.MIG and profile == config.mig_profile
        hard[f"requests.nvidia.com/mig-{profile}"] = str(c("mig_instances") if mine else 0)
    spec = {"hard": dict(sorted(hard.items()))}
    return obj("v1", "ResourceQuota", meta("bh-quota", namespace, labels(tenant.name)), spec=spec)


def mig_resources(config: K8sConfig) -> list[str]:
    """The GPU model's MIG profiles that have a Kubernetes resource name (`+me` ones do not)."""
    return [p.name for p in config.gpu().profiles if "+" not in p.name]


def _limit_range(
    tenant: TenantView, namespace: str, role: str, config: K8sConfig
) -> dict[str, Any]:
    c = namespace_share(tenant, role, config)
    cpu, memory, disk = c("cpu_millicores"), c("memory_mib"), c("ephemeral_storage_mib")
    container = {
        "type": "Container",
        "default": {
            "cpu": f"{min(cpu, 1000)}m",
            "memory": _mib(min(memory, 1024)),
            "ephemeral-storage": _mib(min(disk, 1024)),
        },
        "defaultRequest": {
            "cpu": f"{min(cpu, 250)}m",
            "memory": _mib(min(memory, 256)),
            "ephemeral-storage": _mib(min(disk, 256)),
        },
        "max": {"cpu": f"{cpu}m", "memory": _mib(memory), "ephemeral-storage": _mib(disk)},
    }
    limits: list[dict[str, Any]] = [container]
    if c("pvcs") > 0 and c("pvc_storage_mib") > 0:
        limits.append(
            {"type": "PersistentVolumeClaim", "max": {"storage": _mib(c("pvc_storage_mib"))}}
        )
    found = meta("bh-limits", namespace, labels(tenant.name))
    return obj("v1", "LimitRange", found, spec={"limits": limits})


def _account(tenant: TenantView, namespace: str, component: str) -> dict[str, Any]:
    found = labels(tenant.name, None if component == "default" else component)
    return obj(
        "v1",
        "ServiceAccount",
        meta(account_name(component), namespace, found),
        automountServiceAccountToken=False,
    )


def _admin_role(tenant: TenantView, namespace: str) -> list[dict[str, Any]]:
    read = ["get", "list", "watch"]
    rules = [
        {"apiGroups": [""], "resources": ["events", "pods", "pods/log"], "verbs": read},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": read},
    ]
    api = "rbac.authorization.k8s.io/v1"
    role = obj(api, "Role", meta(ADMIN_ROLE, namespace, labels(tenant.name)), rules=rules)
    subject = {
        "kind": "Group",
        "apiGroup": "rbac.authorization.k8s.io",
        "name": admins_group(tenant.name),
    }
    binding = obj(
        api,
        "RoleBinding",
        meta(ADMIN_ROLE, namespace, labels(tenant.name)),
        subjects=[subject],
        roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ADMIN_ROLE},
    )
    return [role, binding]
