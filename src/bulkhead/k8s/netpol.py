"""An evaluator of Kubernetes NetworkPolicy (networking.k8s.io/v1) over rendered objects.

It answers "may this connection be made?" the way the API documents it
(concepts/services-networking/network-policies and the `NetworkPolicySpec`
types), without a cluster:

- A pod is isolated for a direction when some NetworkPolicy in its namespace
  selects it (`spec.podSelector`, `{}` = every pod of the namespace) and has
  that direction in its policy types. A pod no policy isolates is allowed in
  that direction. Policies are additive: an isolated pod is allowed what the
  union of the rules of the policies that select it allows.
- Policy types: `spec.policyTypes` when given; otherwise `Ingress` always and
  `Egress` when the policy has at least one egress rule (the API server's
  defaulting).
- A connection is allowed when egress is allowed at its source AND ingress at
  its destination. An address outside the cluster has no policies of its own.
- A rule matches when its peers (`from`/`to`) match the other end and its
  `ports` match the probe. A missing or empty `from`/`to` matches every peer;
  a missing or empty `ports` matches every port and protocol.
- A peer with `podSelector` alone selects pods of the policy's own namespace;
  `namespaceSelector` alone selects every pod of the namespaces it matches;
  both in ONE peer select the pods matching the pod selector inside the
  matching namespaces (AND); separate peers are alternatives (OR). Namespace
  labels come from the Namespace objects given; every namespace carries
  `kubernetes.io/metadata.name: <name>` implicitly.
- A port entry's protocol defaults to TCP. A numeric port with `endPort`
  matches the closed range; a named port matches the destination pod's
  container port of that name and protocol (an address outside the cluster
  has no named ports, so a named port never matches it). An entry without a
  port matches every port of its protocol.
- `ipBlock` (IPv4 or IPv6, `except` carved out) matches addresses. The API
  intends it for cluster-external addresses and leaves it to the network
  plugin whether it also matches pod IPs. Here a pod matches an ipBlock only
  through the addresses given in `Pod.ips`: a pod without IPs is reached by
  selectors alone, and a proof that must hold whatever the plugin does gives
  its pods IPs from the cluster's pod CIDR, so a wide ipBlock (`0.0.0.0/0`)
  shows up as the pod-to-pod edge some plugins would let through.

Not modelled: host-network pods (outside policy), the node's own traffic to
its pods (always allowed by most plugins), Service IP rewriting (probe the
backing pods instead), a pod's traffic to itself (never an edge here).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkhead.k8s._selectors import (
    NAME_LABEL,
    matches,
    name_of,
    namespace_labels,
    namespace_of,
    of_kind,
)
from bulkhead.k8s._templates import pod_templates

INGRESS = "Ingress"
EGRESS = "Egress"


@dataclass(frozen=True)
class ContainerPort:
    """A port a pod's container declares; `name` is what a policy's named port refers to."""

    port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class Pod:
    """A pod as policies see it: where it runs, its labels, its ports, optionally its IPs."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[ContainerPort, ...] = ()
    ips: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """`namespace/name`, how the reachability matrix names this pod."""
        return f"{self.namespace}/{self.name}"

    def resolves(self, name: str, port: int, protocol: str) -> bool:
        """Whether the named port `name` of this pod is `port`/`protocol`."""
        return any(p.name == name and p.port == port and p.protocol == protocol for p in self.ports)


@dataclass(frozen=True)
class Probe:
    """One destination port and protocol the matrix is computed for."""

    port: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol}"


Endpoint = Pod | str
"""A pod, or an IP address outside the cluster (IPv4 or IPv6, as text)."""


def policy_types(policy: Mapping[str, Any]) -> frozenset[str]:
    """The directions a NetworkPolicy governs, with the API server's defaulting applied."""
    spec = policy.get("spec") or {}
    explicit = spec.get("policyTypes")
    if explicit:
        return frozenset(str(t) for t in explicit)
    return frozenset({INGRESS, EGRESS}) if spec.get("egress") else frozenset({INGRESS})


@dataclass(frozen=True)
class _Policy:
    namespace: str
    name: str
    selector: Mapping[str, Any]
    types: frozenset[str]
    ingress: tuple[Mapping[str, Any], ...]
    egress: tuple[Mapping[str, Any], ...]


class Policies:
    """The NetworkPolicies and Namespaces of a set of objects, read once for many questions."""

    def __init__(self, objects: Sequence[Mapping[str, Any]]) -> None:
        self._namespaces = namespace_labels(objects)
        self._policies: list[_Policy] = []
        for obj in of_kind(objects, "NetworkPolicy"):
            spec = obj.get("spec") or {}
            self._policies.append(
                _Policy(
                    namespace=namespace_of(obj),
                    name=name_of(obj),
                    selector=spec.get("podSelector") or {},
                    types=policy_types(obj),
                    ingress=tuple(spec.get("ingress") or ()),
                    egress=tuple(spec.get("egress") or ()),
                )
            )

    def allowed(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        """Whether `src` may open a connection to `dst` on `port`/`protocol`."""
        if isinstance(src, str) and isinstance(dst, str):
            raise ValueError("neither end is a pod: no NetworkPolicy governs that connection")
        egress_ok = isinstance(src, str) or self._direction(EGRESS, src, dst, dst, port, protocol)
        ingress_ok = isinstance(dst, str) or self._direction(INGRESS, dst, src, dst, port, protocol)
        return egress_ok and ingress_ok

    def isolated(self, pod: Pod, direction: str) -> bool:
        """Whether some policy selects `pod` for `direction` (`Ingress` or `Egress`)."""
        return any(True for _ in self._selecting(pod, direction))

    def _selecting(self, pod: Pod, direction: str) -> Iterable[_Policy]:
        for policy in self._policies:
            if (
                direction in policy.types
                and policy.namespace == pod.namespace
                and matches(policy.selector, pod.labels)
            ):
                yield policy

    def _direction(
        self, direction: str, pod: Pod, peer: Endpoint, dst: Endpoint, port: int, protocol: str
    ) -> bool:
        """Whether `pod`'s `direction` policies let it talk with `peer` (`dst` owns the port)."""
        peers_key = "from" if direction == INGRESS else "to"
        isolated = False
        for policy in self._selecting(pod, direction):
            isolated = True
            rules = policy.ingress if direction == INGRESS else policy.egress
            for rule in rules:
                if self._peers_match(rule.get(peers_key), policy.namespace, peer) and _ports_match(
                    rule.get("ports"), dst, port, protocol
                ):
                    return True
        return not isolated

    def _peers_match(
        self, peers: Sequence[Mapping[str, Any]] | None, namespace: str, peer: Endpoint
    ) -> bool:
        if not peers:
            return True
        return any(self._peer_matches(entry, namespace, peer) for entry in peers)

    def _peer_matches(self, entry: Mapping[str, Any], namespace: str, peer: Endpoint) -> bool:
        block = entry.get("ipBlock")
        if block is not None:
            addresses = (peer,) if isinstance(peer, str) else peer.ips
            return any(_in_block(block, address) for address in addresses)
        pod_selector = entry.get("podSelector")
        ns_selector = entry.get("namespaceSelector")
        if pod_selector is None and ns_selector is None:
            raise ValueError("a NetworkPolicy peer without podSelector, namespaceSelector, ipBlock")
        if isinstance(peer, str):
            return False
        if ns_selector is None:
            if peer.namespace != namespace:
                return False
        elif not matches(ns_selector, self._namespace_labels(peer.namespace)):
            return False
        return pod_selector is None or matches(pod_selector, peer.labels)

    def _namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self._namespaces.get(namespace) or {NAME_LABEL: namespace}


def _in_block(block: Mapping[str, Any], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    network = ipaddress.ip_network(str(block["cidr"]), strict=False)
    if ip.version != network.version or ip not in network:
        return False
    for carved in block.get("except") or ():
        hole = ipaddress.ip_network(str(carved), strict=False)
        if hole.version == ip.version and ip in hole:
            return False
    return True


def _ports_match(
    ports: Sequence[Mapping[str, Any]] | None, dst: Endpoint, port: int, protocol: str
) -> bool:
    if not ports:
        return True
    for entry in ports:
        if str(entry.get("protocol") or "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, int):
            end = entry.get("endPort")
            if (wanted == port) if end is None else (wanted <= port <= int(end)):
                return True
        elif isinstance(dst, Pod) and dst.resolves(str(wanted), port, protocol):
            return True
    return False


def allowed(
    src: Endpoint,
    dst: Endpoint,
    port: int,
    protocol: str = "TCP",
    objects: Sequence[Mapping[str, Any]] = (),
) -> bool:
    """Whether `src` may connect to `dst` on `port`/`protocol` under the policies in `objects`."""
    return Policies(objects).allowed(src, dst, port, protocol)


Edge = tuple[str, str, int, str]
"""`(source, destination, port, protocol)`; a pod named `namespace/name`, an address by its text."""


def endpoint_key(endpoint: Endpoint) -> str:
    """How the matrix names an endpoint: `namespace/name` for a pod, the address's text else."""
    return endpoint.key if isinstance(endpoint, Pod) else str(ipaddress.ip_address(endpoint))


@dataclass(frozen=True)
class Reachability:
    """Every allowed (source, destination, probe), as computed by `reachability`."""

    endpoints: tuple[str, ...]
    probes: tuple[Probe, ...]
    edges: frozenset[Edge]

    def allows(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return (endpoint_key(src), endpoint_key(dst), port, protocol) in self.edges

    def reaches(self, src: Endpoint, dst: Endpoint) -> bool:
        """Whether `src` reaches `dst` on any probe."""
        s, d = endpoint_key(src), endpoint_key(dst)
        return any(edge[0] == s and edge[1] == d for edge in self.edges)

    def sources_of(self, dst: Endpoint) -> set[str]:
        d = endpoint_key(dst)
        return {edge[0] for edge in self.edges if edge[1] == d}

    def destinations_of(self, src: Endpoint) -> set[str]:
        s = endpoint_key(src)
        return {edge[1] for edge in self.edges if edge[0] == s}

    def touching(self, keys: Iterable[str]) -> Reachability:
        """The edges with at least one end among `keys` (the rest of the matrix dropped)."""
        wanted = set(keys)
        edges = frozenset(e for e in self.edges if e[0] in wanted or e[1] in wanted)
        return Reachability(self.endpoints, self.probes, edges)

    def render(self) -> str:
        """One line per edge, sorted: `src -> dst port/PROTO` (for golden files and messages)."""
        lines = sorted(f"{s} -> {d} {p}/{proto}" for s, d, p, proto in self.edges)
        return "\n".join(lines) + ("\n" if lines else "")


def reachability(
    objects: Sequence[Mapping[str, Any]],
    pods: Sequence[Pod],
    externals: Sequence[str] = (),
    probes: Sequence[Probe] = (Probe(80),),
) -> Reachability:
    """The matrix of every pod and external address with every other, on every probe.

    Pairs of two external addresses are not part of it (no policy governs
    them), nor a pod with itself.
    """
    policies = Policies(objects)
    ends: list[Endpoint] = [*pods, *externals]
    keys = [endpoint_key(end) for end in ends]
    if len(set(keys)) != len(keys):
        raise ValueError("two endpoints share a name; pods need distinct namespace/name")
    edges: set[Edge] = set()
    for src, src_key in zip(ends, keys, strict=True):
        for dst, dst_key in zip(ends, keys, strict=True):
            if src_key == dst_key or (isinstance(src, str) and isinstance(dst, str)):
                continue
            for probe in probes:
                if policies.allowed(src, dst, probe.port, probe.protocol):
                    edges.add((src_key, dst_key, probe.port, probe.protocol))
    return Reachability(tuple(keys), tuple(probes), frozenset(edges))


def pods_from_objects(objects: Sequence[Mapping[str, Any]]) -> list[Pod]:
    """One `Pod` per pod template (Pod, Deployment, StatefulSet, DaemonSet, Job, CronJob, …).

    The pod is named after its workload (replicas of one template behave
    alike under policies), labelled with the template's labels, and carries
    the container and init container ports (a sidecar init container may
    serve). It has no IPs.
    """
    found: list[Pod] = []
    for template in pod_templates(objects):
        ports: list[ContainerPort] = []
        for group in ("containers", "initContainers"):
            for container in template.spec.get(group) or ():
                for entry in container.get("ports") or ():
                    ports.append(
                        ContainerPort(
                            port=int(entry["containerPort"]),
                            name=str(entry.get("name") or ""),
                            protocol=str(entry.get("protocol") or "TCP"),
                        )
                    )
        labels = {str(k): str(v) for k, v in (template.metadata.get("labels") or {}).items()}
        found.append(
            Pod(
                namespace=template.namespace,
                name=name_of(template.owner),
                labels=labels,
                ports=tuple(ports),
            )
        )
    return found
