"""Where each kind Bulkhead renders lives in the Kubernetes REST API.

The API server serves a kind at a path made of its group and version and its
resource (the lower-case plural), under `namespaces/<ns>/` when it is
namespaced: the core group at `/api/v1`, every named group at
`/apis/<group>/<version>` (Kubernetes API concepts, "Resource URIs").  The
table below covers every kind the renderer makes; anything else is refused
rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bulkhead.errors import InvalidRequest

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "bulkhead"
OWNED = f"{MANAGED_BY}={MANAGER}"
TENANT_LABEL = "bulkhead.dev/tenant"


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One kind's place in the REST API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def prefix(self) -> str:
        """`/api/v1` for the core group, `/apis/<group>/<version>` for the others."""
        if "/" in self.api_version:
            return f"/apis/{self.api_version}"
        return f"/api/{self.api_version}"

    def collection(self, namespace: str | None = None) -> str:
        """The list path: in one namespace, or across all of them (or cluster-scoped)."""
        if self.namespaced and namespace:
            return f"{self.prefix}/namespaces/{_segment(namespace)}/{self.plural}"
        return f"{self.prefix}/{self.plural}"

    def item(self, name: str, namespace: str | None) -> str:
        return f"{self.collection(namespace)}/{_segment(name)}"


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("v1", "Namespace", "namespaces", namespaced=False),
    ResourceType("v1", "ResourceQuota", "resourcequotas", namespaced=True),
    ResourceType("v1", "LimitRange", "limitranges", namespaced=True),
    ResourceType("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", namespaced=True),
    ResourceType("v1", "ServiceAccount", "serviceaccounts", namespaced=True),
    ResourceType("rbac.authorization.k8s.io/v1", "Role", "roles", namespaced=True),
    ResourceType("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", namespaced=True),
    ResourceType("apps/v1", "Deployment", "deployments", namespaced=True),
    ResourceType("v1", "Service", "services", namespaced=True),
    ResourceType("v1", "ConfigMap", "configmaps", namespaced=True),
)
_BY_KIND: Mapping[tuple[str, str], ResourceType] = {
    (t.api_version, t.kind): t for t in RESOURCE_TYPES
}


def _segment(value: str) -> str:
    """One path segment: names are DNS labels, but never let one carry a `/` or `?`."""
    return quote(value, safe="")


def resource_type(obj: Mapping[str, Any]) -> ResourceType:
    """The REST place of a rendered object's apiVersion and kind."""
    key = (str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    try:
        return _BY_KIND[key]
    except KeyError:
        raise InvalidRequest(f"Bulkhead does not apply {key[1] or '?'} ({key[0] or '?'})") from None


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """Which object: its kind (with its group and version), namespace and name."""

    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name}"


def ref(obj: Mapping[str, Any]) -> ObjectRef:
    """The reference of an object, checked to have a name (and a namespace where needed)."""
    rtype = resource_type(obj)
    meta = obj.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    if not name:
        raise InvalidRequest(f"a {rtype.kind} without metadata.name")
    if rtype.namespaced and not namespace:
        raise InvalidRequest(f"{rtype.kind}/{name} has no metadata.namespace")
    return ObjectRef(rtype.api_version, rtype.kind, namespace if rtype.namespaced else "", name)


def object_path(obj: Mapping[str, Any]) -> str:
    """The REST path of one rendered object."""
    r = ref(obj)
    return resource_type(obj).item(r.name, r.namespace or None)


def apply_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespaces first (their objects cannot exist before them), then in the given order."""
    return sorted(objects, key=lambda o: o.get("kind") != "Namespace")
