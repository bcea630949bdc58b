"""What the apply-path tests share: a stand-in renderer and kubeconfig files.

The stand-in renderer is not Bulkhead's (`bulkhead.k8s.render`): it makes, per
tenant, a namespace, a quota whose size follows the tier and the tenant's
request limit, and a default-deny NetworkPolicy: enough to see objects come,
change and go.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bulkhead.testing.kube_api import RecordingKubeApi

TOKEN = "kube-token-s3cr3t-0123456789"
OWNER = {"app.kubernetes.io/managed-by": "bulkhead"}
PODS_BY_TIER = {"shared": "10", "mig": "20", "dedicated": "50"}


def labels(tenant: str | None = None) -> dict[str, str]:
    return {**OWNER, **({"bulkhead.dev/tenant": tenant} if tenant else {})}


def namespace(name: str, tenant: str | None = None) -> dict[str, Any]:
    meta = {"name": name, "labels": labels(tenant)}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def quota(ns: str, tenant: str, pods: str = "10", rpm: Any = None) -> dict[str, Any]:
    meta = {"name": "tenant-quota", "namespace": ns, "labels": labels(tenant)}
    if rpm is not None:
        meta["annotations"] = {"bulkhead.dev/requests-per-minute": str(rpm)}
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta,
        "spec": {"hard": {"pods": pods, "requests.cpu": "4"}},
    }


def deny_all(ns: str, tenant: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": ns, "labels": labels(tenant)},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def tenant_objects(tenant: str, tier: str = "shared", rpm: Any = None) -> list[dict[str, Any]]:
    ns = f"bh-{tenant}-serve"
    return [
        namespace(ns, tenant),
        quota(ns, tenant, PODS_BY_TIER.get(tier, "10"), rpm),
        deny_all(ns, tenant),
    ]


def stand_in_render(
    tenants: list[dict[str, Any]], models: list[dict[str, Any]], limits: dict[str, Any]
) -> list[dict[str, Any]]:
    objects = []
    for t in tenants:
        rpm = ((limits.get(t["name"]) or {}).get("limits") or {}).get("requests_per_minute")
        value = rpm.get("value") if isinstance(rpm, dict) else None
        objects += tenant_objects(t["name"], t.get("tier", "shared"), value)
    return objects


def kubeconfig(
    path: Path, api: RecordingKubeApi, *, token: str = TOKEN, extra_context: bool = False
) -> Path:
    """A kubeconfig (JSON is YAML) whose current context reaches `api` with `token`;
    `extra_context` adds a context `wrong` with another token."""
    cluster: dict[str, Any] = {"server": api.url}
    if api.ca_file is not None:
        cluster["certificate-authority"] = str(api.ca_file)
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "double", "cluster": cluster}],
        "users": [{"name": "bulkhead", "user": {"token": token}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "bulkhead"}}],
        "current-context": "double",
    }
    if extra_context:
        config["users"].append({"name": "other", "user": {"token": "not-the-token"}})
        config["contexts"].append(
            {"name": "wrong", "context": {"cluster": "double", "user": "other"}}
        )
    path.write_text(json.dumps(config))
    return path
