"""Object names and owner labels: every rendered name is a valid DNS label.

A tenant's name becomes part of its namespaces' names, so one that cannot
(upper case, '_', too long) is refused with the reason; a model's name may
be anything the catalog allows (`org/Model-7B`), so its objects are named by
a cleaned prefix and a hash of the whole name, which two names never share.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from bulkhead.errors import InvalidRequest

MANAGED_BY = {"app.kubernetes.io/managed-by": "bulkhead"}
TENANT = "bulkhead.dev/tenant"
COMPONENT = "bulkhead.dev/component"
MODEL = "bulkhead.dev/model"
MODEL_SERVER, VECTOR_STORE, TRAINING, GATEWAY, GPU = (
    "model-server",
    "vector-store",
    "training",
    "gateway",
    "gpu",
)
NAMESPACE_NAME = "kubernetes.io/metadata.name"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LONGEST = 63 - len("bh--serve")


def check_label(name: str, what: str) -> str:
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise InvalidRequest(
            f"{what} '{name}' is not a DNS label (a-z, 0-9 and '-', at most 63 characters).",
            param="name",
        )
    return name


def serve_namespace(tenant: str) -> str:
    return f"bh-{_tenant_part(tenant)}-serve"


def train_namespace(tenant: str) -> str:
    return f"bh-{_tenant_part(tenant)}-train"


def _tenant_part(tenant: str) -> str:
    if len(tenant) > _LONGEST or not _DNS_LABEL.match(tenant):
        raise InvalidRequest(
            f"Tenant '{tenant}' cannot name a Kubernetes namespace: a name of lower-case "
            f"letters, digits and '-' (not at either end), at most {_LONGEST} characters, can.",
            param="tenant",
        )
    return tenant


def model_object(model: str) -> str:
    """`m-<cleaned name>-<32 hex of its hash>`: a DNS-1035 label, distinct per model name.

    128 bits of the hash, so no one finds two names that share one (with 32 bits,
    two names with one cleaned prefix were found in a fraction of a second, and one
    such pair made the whole catalog refuse to render)."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:24].strip("-")
    digest = hashlib.sha256(model.encode()).hexdigest()[:32]
    return f"m-{slug}-{digest}" if slug else f"m-{digest}"


def labels(tenant: str | None, component: str | None = None, **more: str) -> dict[str, str]:
    out = dict(MANAGED_BY)
    if tenant is not None:
        out[TENANT] = tenant
    if component is not None:
        out[COMPONENT] = component
    out.update(more)
    return out


def meta(name: str, namespace: str | None, object_labels: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {"name": check_label(name, "Object name")}
    if namespace is not None:
        found["namespace"] = namespace
    found["labels"] = dict(sorted(object_labels.items()))
    return found


def obj(api_version: str, kind: str, metadata: dict[str, Any], **body: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}
