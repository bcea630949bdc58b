"""NetworkPolicies: deny by default, then one policy per component.

Each of the tenant's namespaces denies all ingress and egress to every pod.
On top, each component gets exactly what it needs, and nothing selects pods
that are no component: model servers take the gateway's calls on 8000 and
reach DNS and the gateway (their init container pulls the encrypted model
from it); the vector store takes the gateway's calls and reaches DNS only;
training jobs take nothing at all and reach nothing at all (their data comes over
`pods/attach`, through the API server).  An outside address is
reachable only where the config lists it (`egress_cidrs`), as an ipBlock that
excepts every metadata and link-local range inside it, so no rule includes one.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from bulkhead.k8s.config import K8sConfig
from bulkhead.k8s.render.names import (
    COMPONENT,
    MODEL_SERVER,
    NAMESPACE_NAME,
    TRAINING,
    VECTOR_STORE,
    labels,
    meta,
    obj,
    serve_namespace,
    train_namespace,
)
from bulkhead.k8s.render.views import TenantView

API = "networking.k8s.io/v1"
MODEL_PORT = 8000
BOTH = ["Ingress", "Egress"]


def render_network(tenant: TenantView, config: K8sConfig) -> list[dict[str, Any]]:
    serve, train = serve_namespace(tenant.name), train_namespace(tenant.name)
    gateway = _gateway_peer(config)
    dns = _dns_rule(config)
    model_egress = [dns, {"to": [gateway], "ports": [_tcp(config.gateway_port)]}]
    model_egress += _outside_rules(config)
    return [
        _deny_all(tenant, serve),
        _deny_all(tenant, train),
        _policy(
            tenant,
            serve,
            MODEL_SERVER,
            ingress=[{"from": [gateway], "ports": [_tcp(MODEL_PORT)]}],
            egress=model_egress,
        ),
        _policy(
            tenant,
            serve,
            VECTOR_STORE,
            ingress=[{"from": [gateway], "ports": [_tcp(config.vector_store_port)]}],
            egress=[dns],
        ),
        # Training pods take nothing and reach nothing, not even DNS: the gateway feeds
        # them through the API server (pods/attach), never over the pod network.
        _policy(tenant, train, TRAINING, ingress=[], egress=[]),
    ]


def _deny_all(tenant: TenantView, namespace: str) -> dict[str, Any]:
    spec = {"podSelector": {}, "policyTypes": BOTH}
    return obj(
        API, "NetworkPolicy", meta("bh-default-deny", namespace, labels(tenant.name)), spec=spec
    )


def _policy(
    tenant: TenantView,
    namespace: str,
    component: str,
    *,
    ingress: list[dict[str, Any]],
    egress: list[dict[str, Any]],
) -> dict[str, Any]:
    """A component's policy; an empty `ingress` list with Ingress in its types admits nothing."""
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": {COMPONENT: component}},
        "policyTypes": BOTH,
        "ingress": ingress,
        "egress": egress,
    }
    found = meta(f"bh-{component}", namespace, labels(tenant.name, component))
    return obj(API, "NetworkPolicy", found, spec=spec)


def _tcp(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def _gateway_peer(config: K8sConfig) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME: config.platform_namespace}},
        "podSelector": {"matchLabels": dict(sorted(config.gateway_labels.items()))},
    }


def _dns_rule(config: K8sConfig) -> dict[str, Any]:
    peer = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME: config.dns_namespace}},
        "podSelector": {"matchLabels": dict(sorted(config.dns_labels.items()))},
    }
    ports = [{"protocol": p, "port": config.dns_port} for p in ("UDP", "TCP")]
    return {"to": [peer], "ports": ports}


def _outside_rules(config: K8sConfig) -> list[dict[str, Any]]:
    if not config.egress_cidrs:
        return []
    peers = [{"ipBlock": ip_block(cidr, config.denied_cidrs)} for cidr in config.egress_cidrs]
    return [{"to": peers}]


def ip_block(cidr: str, denied: tuple[str, ...]) -> dict[str, Any]:
    """An ipBlock for `cidr` excepting each denied range inside it (of its family)."""
    net = ipaddress.ip_network(cidr)
    inside = [
        d
        for d in denied
        if (dn := ipaddress.ip_network(d)).version == net.version
        and dn != net
        and dn.subnet_of(net)  # type: ignore[arg-type]
    ]
    block: dict[str, Any] = {"cidr": cidr}
    if inside:
        block["except"] = inside
    return block
