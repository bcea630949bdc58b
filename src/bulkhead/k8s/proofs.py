"""The isolation a rendered set must give, asserted on its NetworkPolicy reachability matrix.

`isolation_findings(objects)` derives a pod from every pod template and adds
stand-ins (pods named `stand-in-*`):

- for what the set does not render: a gateway pod in the platform namespace,
  an impostor pod there without the gateway's labels, a pod with the
  gateway's labels in an unrelated namespace, the cluster DNS;
- for what a tenant may run that the set has no template for yet: in each
  serve namespace a vector store and an unlabelled pod, in each training
  namespace a training pod and an unlabelled pod;
- for every namespace selector a policy's peer has (that does not pin the
  namespace's name, which the API server sets and no one can change), a
  pod in a namespace of its own (`stand-in-ns-<n>`) carrying labels that
  satisfy it and the peer's pod selector: labels are anyone's to set on
  their own namespace and pods, so a selector of labels is as open as the
  namespaces that could carry them.

Every pod gets an IP from a pod CIDR (so a wide `ipBlock` shows up as the
pod-to-pod edge some network plugins would allow). The matrix is computed
with the cloud metadata addresses and a public address as the outside, on
every container port, every port a policy names, DNS, HTTP, HTTPS and the
environment's ports, and
every edge that touches a tenant's pod (rendered or stand-in) is checked:

- no edge between pods of two different tenants;
- no edge into a pod of a training namespace (`bh-<t>-train`), from anywhere;
- no edge out of a pod of a training namespace, to anywhere: not DNS, not the
  gateway, not the outside (a fine-tuning job gets its data over `pods/attach`);
- no edge into a model-server pod from anything but a gateway pod of the
  platform namespace;
- no edge into a tenant's pod from anything but that tenant's pods and the
  platform namespace's pods (a stranger namespace, the outside);
- no edge from a tenant's pod to a cloud metadata address.

Each finding names the edge (`src -> dst port/PROTO`); none means the proof holds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bulkhead.k8s._selectors import NAME_LABEL, labels_of, matches, name_of, of_kind
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
METADATA_ADDRESSES = ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
PUBLIC_ADDRESS = "93.184.216.34"
POD_CIDR = "10.244.0.0/16"
STAND_IN = "stand-in-"
_TENANT_NAMESPACE = re.compile(r"^bh-(?P<tenant>.+)-(?P<purpose>serve|train)$")


@dataclass(frozen=True)
class Environment:
    """What the rendered set expects around it (the renderer's config says the same)."""

    platform_namespace: str = "bulkhead"
    gateway_labels: Mapping[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "bulkhead-gateway"}
    )
    gateway_port: int = 8080
    dns_namespace: str = "kube-system"
    dns_labels: Mapping[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})
    dns_port: int = 53
    probes: tuple[Probe, ...] = ()
    """Ports to probe besides the pods' own (a vector store's, say)."""


def stand_ins(env: Environment, tenants: Mapping[str, str]) -> list[Pod]:
    """The stand-in pods of the environment and of each tenant namespace."""
    dns = (ContainerPort(env.dns_port, "dns", "UDP"), ContainerPort(env.dns_port, "dns-tcp"))
    pods = [
        Pod(
            env.platform_namespace,
            STAND_IN + "gateway",
            dict(env.gateway_labels),
            (ContainerPort(env.gateway_port, "http"),),
        ),
        Pod(env.platform_namespace, STAND_IN + "impostor", {"app.kubernetes.io/name": "x"}),
        Pod("unrelated", STAND_IN + "stranger", dict(env.gateway_labels)),
        Pod(env.dns_namespace, STAND_IN + "dns", dict(env.dns_labels), dns),
    ]
    for namespace, tenant in sorted(tenants.items()):
        component = "training" if namespace.endswith("-train") else "vector-store"
        owned = {TENANT_LABEL: tenant}
        pods.append(Pod(namespace, STAND_IN + component, {**owned, COMPONENT_LABEL: component}))
        pods.append(Pod(namespace, STAND_IN + "unlabelled", owned))
    return pods


def policy_probes(objects: Sequence[Mapping[str, Any]]) -> set[Probe]:
    """Every port a NetworkPolicy names (a range by its first port; an entry without a
    port by port 1 of its protocol), so an edge a rule opens anywhere is probed."""
    found: set[Probe] = set()
    for policy in of_kind(objects, "NetworkPolicy"):
        spec = policy.get("spec") or {}
        for rule in [*(spec.get("ingress") or ()), *(spec.get("egress") or ())]:
            for entry in rule.get("ports") or ():
                protocol = str(entry.get("protocol") or "TCP")
                port = entry.get("port")
                if port is None:
                    found.add(Probe(1, protocol))
                elif isinstance(port, int):
                    found.add(Probe(port, protocol))
    return found


def satisfying(selector: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Labels that a label selector selects (the fewest it needs), or None when none can."""
    labels = {str(k): str(v) for k, v in ((selector or {}).get("matchLabels") or {}).items()}
    for term in (selector or {}).get("matchExpressions") or ():
        key, values = str(term.get("key")), [str(v) for v in term.get("values") or ()]
        if term.get("operator") == "In" and values:
            labels.setdefault(key, values[0])
        elif term.get("operator") == "Exists":
            labels.setdefault(key, "stand-in")
    return labels if matches(selector, labels) else None


def selector_strangers(objects: Sequence[Mapping[str, Any]]) -> tuple[list[Pod], list[Any]]:
    """A stand-in pod, and its Namespace object, for each namespace selector of a peer."""
    pods: list[Pod] = []
    namespaces: list[dict[str, Any]] = []
    for policy in of_kind(objects, "NetworkPolicy"):
        spec = policy.get("spec") or {}
        rules = [*(spec.get("ingress") or ()), *(spec.get("egress") or ())]
        peers = [p for r in rules for p in [*(r.get("from") or ()), *(r.get("to") or ())]]
        for peer in peers:
            if peer.get("namespaceSelector") is None:
                continue
            ns_labels = satisfying(peer["namespaceSelector"])
            pod_labels = satisfying(peer.get("podSelector"))
            if ns_labels is None or pod_labels is None or NAME_LABEL in ns_labels:
                continue
            name = f"{STAND_IN}ns-{len(namespaces)}"
            meta = {"name": name, "labels": {**ns_labels, NAME_LABEL: name}}
            namespaces.append({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
            pods.append(Pod(name, STAND_IN + "labelled", pod_labels))
    return pods, namespaces


def probes_for(
    pods: Sequence[Pod], env: Environment, objects: Sequence[Mapping[str, Any]] = ()
) -> list[Probe]:
    """Every container port of `pods`, every port a policy of `objects` names, DNS both
    ways, HTTP, HTTPS and the environment's."""
    found = {Probe(env.dns_port, "UDP"), Probe(env.dns_port), Probe(80), Probe(443)}
    found.update(env.probes)
    found.update(policy_probes(objects))
    found.add(Probe(env.gateway_port))
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
    objects: Sequence[Mapping[str, Any]], env: Environment | None = None
) -> tuple[Reachability, list[Pod]]:
    """The matrix the proof reads, with the pods it was computed for (for golden files).

    Only edges with a tenant's pod at one end are kept: what the environment's
    stand-ins and the outside may do among themselves is no business of the set.
    """
    env = env or Environment()
    tenants = tenant_of_namespaces(objects)
    strangers, their_namespaces = selector_strangers(objects)
    pods = with_ips([*pods_from_objects(objects), *stand_ins(env, tenants), *strangers])
    externals = [*METADATA_ADDRESSES, PUBLIC_ADDRESS]
    probes = probes_for(pods, env, objects)
    matrix = reachability([*objects, *their_namespaces], pods, externals, probes)
    return matrix.touching(pod.key for pod in pods if pod.namespace in tenants), pods


def isolation_findings(
    objects: Sequence[Mapping[str, Any]], env: Environment | None = None
) -> list[str]:
    """Every edge of the rendered set's matrix that breaks the isolation rules above."""
    env = env or Environment()
    matrix, pods = isolation_matrix(objects, env)
    by_key = {pod.key: pod for pod in pods}
    tenants = tenant_of_namespaces(objects)
    metadata = {str(ipaddress.ip_address(a)) for a in METADATA_ADDRESSES}
    findings: list[str] = []
    for src, dst, port, protocol in sorted(matrix.edges):
        edge = f"{src} -> {dst} {port}/{protocol}"
        source, target = by_key.get(src), by_key.get(dst)
        mine = tenants.get(source.namespace) if source else None
        owner = tenants.get(target.namespace) if target else None
        if mine and owner and mine != owner:
            findings.append(f"{edge}: crosses from tenant {mine} to tenant {owner}")
        if owner and target and target.namespace.endswith("-train"):
            findings.append(f"{edge}: enters a training namespace")
        if mine and source and source.namespace.endswith("-train"):
            findings.append(f"{edge}: leaves a training namespace")
        model = target is not None and target.labels.get(COMPONENT_LABEL) == "model-server"
        if model and not _is_gateway(source, env):
            findings.append(f"{edge}: reaches a model server from outside the gateway")
        platform = source is not None and source.namespace == env.platform_namespace
        if owner and not mine and not platform:
            findings.append(f"{edge}: enters tenant {owner} from outside it and the platform")
        if mine and dst in metadata:
            findings.append(f"{edge}: reaches the cloud metadata address")
    return findings


def _is_gateway(pod: Pod | None, env: Environment) -> bool:
    if pod is None or pod.namespace != env.platform_namespace:
        return False
    return all(pod.labels.get(key) == value for key, value in env.gateway_labels.items())
