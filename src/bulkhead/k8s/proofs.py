"""The isolation a rendered set must give, asserted on its NetworkPolicy reachability matrix.

`isolation_findings(objects)` derives a pod from every pod template, adds the
stand-ins for what the set does not render (a gateway pod in the platform
namespace, an impostor pod there without the gateway's label, a pod in an
unrelated namespace, the cluster DNS), gives every pod an IP from a pod CIDR
(so a wide `ipBlock` shows up as the pod-to-pod edge some network plugins
would allow), computes the matrix with the metadata addresses and a public
address as the outside, and reports:

- an edge between pods of two different tenants;
- an edge into a pod of a training namespace (`bh-<t>-train`), from anywhere;
- an edge into a model-server pod from anything but a gateway pod of the
  platform namespace;
- an edge from a rendered pod to a cloud metadata address;
- an edge into a tenant's pod from anything but that tenant's pods and the
  platform namespace's pods (a stranger namespace, the outside).

Each finding names the edge (`src -> dst port/PROTO`); none means the proof holds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from bulkhead.k8s._selectors import labels_of, name_of, of_kind
from bulkhead.k8s.netpol import (
    ContainerPort,
    Pod,
    Probe,
    Reachability,
    pods_from_objects,
    reachability,
)

TENANT_LABEL = "bulkhead.dev/tenant"
COMPONENT_LABEL = "bulkhead.dev/component"
GATEWAY_LABELS = {"app.kubernetes.io/name": "bulkhead-gateway"}
METADATA_ADDRESSES = ("169.254.169.254", "fd00:ec2::254")
PUBLIC_ADDRESS = "93.184.216.34"
POD_CIDR = "10.244.0.0/16"
_TENANT_NAMESPACE = re.compile(r"^bh-(?P<tenant>.+)-(?P<purpose>serve|train)$")


def stand_ins(platform_namespace: str = "bulkhead") -> list[Pod]:
    """The pods a tenant's rendered set talks with but does not contain (named `stand-in-*`)."""
    gateway_ports = (ContainerPort(8080, "http"),)
    dns_ports = (ContainerPort(53, "dns", "UDP"), ContainerPort(53, "dns-tcp"))
    return [
        Pod(platform_namespace, "stand-in-gateway", dict(GATEWAY_LABELS), gateway_ports),
        Pod(platform_namespace, "stand-in-impostor", {"app.kubernetes.io/name": "impostor"}),
        Pod("unrelated", "stand-in-stranger", {"app.kubernetes.io/name": "bulkhead-gateway"}),
        Pod("kube-system", "stand-in-coredns", {"k8s-app": "kube-dns"}, dns_ports),
    ]


def probes_for(pods: Sequence[Pod]) -> list[Probe]:
    """Every container port of `pods`, DNS both ways, HTTP and HTTPS."""
    found = {Probe(53, "UDP"), Probe(53), Probe(80), Probe(443)}
    found.update(Probe(p.port, p.protocol) for pod in pods for p in pod.ports)
    return sorted(found, key=lambda p: (p.port, p.protocol))


def with_ips(pods: Sequence[Pod], pod_cidr: str = POD_CIDR) -> list[Pod]:
    """The pods, each given the next address of `pod_cidr`."""
    hosts = ipaddress.ip_network(pod_cidr).hosts()
    return [replace(pod, ips=(str(next(hosts)),)) for pod in pods]


def tenant_of_namespaces(objects: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each tenant namespace's tenant, from its label or else from its `bh-<t>-…` name."""
    result: dict[str, str] = {}
    for ns in of_kind(objects, "Namespace"):
        name, labels = name_of(ns), labels_of(ns)
        match = _TENANT_NAMESPACE.match(name)
        if TENANT_LABEL in labels:
            result[name] = labels[TENANT_LABEL]
        elif match:
            result[name] = match["tenant"]
    return result


def isolation_matrix(
    objects: Sequence[Mapping[str, Any]], platform_namespace: str = "bulkhead"
) -> tuple[Reachability, list[Pod]]:
    """The matrix the proof reads, with the pods it was computed for (for golden files).

    Only edges with a rendered pod at one end are kept: what the stand-ins and
    the outside may do among themselves is no business of the rendered set.
    """
    rendered = pods_from_objects(objects)
    pods = with_ips([*rendered, *stand_ins(platform_namespace)])
    externals = [*METADATA_ADDRESSES, PUBLIC_ADDRESS]
    matrix = reachability(objects, pods, externals, probes_for(pods))
    return matrix.touching(pod.key for pod in rendered), pods


def isolation_findings(
    objects: Sequence[Mapping[str, Any]], platform_namespace: str = "bulkhead"
) -> list[str]:
    """Every edge of the rendered set's matrix that breaks the isolation rules above."""
    matrix, pods = isolation_matrix(objects, platform_namespace)
    by_key = {pod.key: pod for pod in pods}
    rendered = {pod.key for pod in pods if not pod.name.startswith("stand-in-")}
    tenants = tenant_of_namespaces(objects)
    metadata = {str(ipaddress.ip_address(a)) for a in METADATA_ADDRESSES}
    findings: list[str] = []
    for src, dst, port, protocol in sorted(matrix.edges):
        edge = f"{src} -> {dst} {port}/{protocol}"
        source, target = by_key.get(src), by_key.get(dst)
        if source and target:
            a, b = tenants.get(source.namespace), tenants.get(target.namespace)
            if a and b and a != b:
                findings.append(f"{edge}: crosses from tenant {a} to tenant {b}")
        if target and target.namespace.endswith("-train") and target.namespace in tenants:
            findings.append(f"{edge}: enters a training namespace")
        model = target is not None and target.labels.get(COMPONENT_LABEL) == "model-server"
        if model and not _is_gateway(source, platform_namespace):
            findings.append(f"{edge}: reaches a model server from outside the gateway")
        if src in rendered and dst in metadata:
            findings.append(f"{edge}: reaches the cloud metadata address")
        owner = tenants.get(target.namespace) if target else None
        if owner and not (
            source and source.namespace in {platform_namespace, *_spaces(tenants, owner)}
        ):
            findings.append(f"{edge}: enters tenant {owner} from outside it and the platform")
    return findings


def _is_gateway(pod: Pod | None, platform_namespace: str) -> bool:
    if pod is None or pod.namespace != platform_namespace:
        return False
    return all(pod.labels.get(key) == value for key, value in GATEWAY_LABELS.items())


def _spaces(tenants: Mapping[str, str], tenant: str) -> set[str]:
    return {namespace for namespace, owner in tenants.items() if owner == tenant}
