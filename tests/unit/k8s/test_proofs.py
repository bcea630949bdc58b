"""The isolation proof over a hand-built tenant set shaped like the shared design of issue 16."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bulkhead.k8s.netpol import Pod, Probe
from bulkhead.k8s.proofs import Environment, isolation_findings, isolation_matrix, with_ips

Obj = dict[str, Any]


def namespace(name: str, tenant: str) -> Obj:
    return {
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"bulkhead.dev/tenant": tenant}},
    }


def netpol(ns: str, name: str, **spec: Any) -> Obj:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": {}, **spec},
    }


def workload(kind: str, ns: str, name: str, component: str, port: int | None) -> Obj:
    ports = [{"containerPort": port, "name": "http"}] if port else []
    labels = {"bulkhead.dev/component": component, "app.kubernetes.io/name": name}
    return {
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "ports": ports}]},
            }
        },
    }


DNS_EGRESS = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
}


def tenant(t: str) -> list[Obj]:
    serve, train = f"bh-{t}-serve", f"bh-{t}-train"
    from_gateway = {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "bulkhead"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "bulkhead-gateway"}},
            }
        ],
        "ports": [{"port": "http", "protocol": "TCP"}],
    }
    model = {"matchLabels": {"bulkhead.dev/component": "model-server"}}
    return [
        namespace(serve, t),
        namespace(train, t),
        netpol(serve, "default-deny", policyTypes=["Ingress", "Egress"]),
        netpol(train, "default-deny", policyTypes=["Ingress", "Egress"]),
        netpol(serve, "dns", policyTypes=["Egress"], egress=[DNS_EGRESS]),
        netpol(
            serve,
            "model-from-gateway",
            podSelector=model,
            policyTypes=["Ingress"],
            ingress=[from_gateway],
        ),
        workload("Deployment", serve, "vllm-m1", "model-server", 8000),
        workload("StatefulSet", serve, "vectors", "vector-store", 6333),
        workload("Job", train, "finetune", "training", None),
    ]


def good() -> list[Obj]:
    return [*tenant("acme"), *tenant("globex")]


def test_good_set_holds() -> None:
    assert isolation_findings(good()) == []
    matrix, _ = isolation_matrix(good())
    assert matrix.sources_of(Pod("bh-acme-serve", "vllm-m1")) == {"bulkhead/stand-in-gateway"}
    assert not matrix.destinations_of(Pod("bh-acme-train", "finetune"))
    assert not matrix.destinations_of(Pod("bh-acme-serve", "vectors")) - {
        "kube-system/stand-in-dns"
    }


def add(obj: Obj) -> Callable[[list[Obj]], None]:
    return lambda objects: objects.append(obj)


MUTATIONS = [
    (
        "allow all ingress in serve",
        add(netpol("bh-acme-serve", "open", policyTypes=["Ingress"], ingress=[{}])),
        "reaches a model server from outside the gateway",
    ),
    (
        "gateway namespace without pod selector",
        add(
            netpol(
                "bh-acme-serve",
                "ns-only",
                ingress=[
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "bulkhead"}
                                }
                            }
                        ]
                    }
                ],
            )
        ),
        "bulkhead/stand-in-impostor -> bh-acme-serve/vllm-m1",
    ),
    (
        "pod selector without namespace selector (OR)",
        add(
            netpol(
                "bh-acme-serve",
                "split",
                ingress=[
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "bulkhead"}
                                }
                            },
                            {
                                "podSelector": {
                                    "matchLabels": {"app.kubernetes.io/name": "bulkhead-gateway"}
                                }
                            },
                        ]
                    }
                ],
            )
        ),
        "reaches a model server from outside the gateway",
    ),
    (
        "egress anywhere",
        add(
            netpol(
                "bh-acme-serve",
                "out",
                policyTypes=["Egress"],
                egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
            )
        ),
        "bh-acme-serve/vllm-m1 -> 169.254.169.254 80/TCP: reaches the cloud metadata address",
    ),
    (
        "egress anywhere meets ingress from everywhere through pod IPs",
        lambda objects: objects.extend(
            [
                netpol(
                    "bh-globex-serve",
                    "out",
                    policyTypes=["Egress"],
                    egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
                ),
                netpol(
                    "bh-acme-serve",
                    "in",
                    podSelector={"matchLabels": {"bulkhead.dev/component": "vector-store"}},
                    ingress=[{"from": [{"ipBlock": {"cidr": "10.244.0.0/16"}}]}],
                ),
            ]
        ),
        "crosses from tenant globex to tenant acme",
    ),
    (
        "ingress into training",
        add(
            netpol(
                "bh-acme-train",
                "in",
                policyTypes=["Ingress"],
                ingress=[{}],
            )
        ),
        "enters a training namespace",
    ),
    (
        "no default deny in training",
        lambda objects: objects.remove(objects[3]),
        "unrelated/stand-in-stranger -> bh-acme-train/stand-in-unlabelled 80/TCP: enters a",
    ),
    (
        "training reaches DNS",
        add(netpol("bh-acme-train", "dns", policyTypes=["Egress"], egress=[DNS_EGRESS])),
        "bh-acme-train/finetune -> kube-system/stand-in-dns 53/UDP: leaves a training namespace",
    ),
    (
        "tenant egress anywhere",
        add(netpol("bh-acme-train", "out", policyTypes=["Egress"], egress=[{}])),
        "bh-acme-train/stand-in-training -> 169.254.169.254 80/TCP: reaches the cloud metadata",
    ),
    (
        "no default deny",
        lambda objects: objects.remove(objects[2]),
        "unrelated/stand-in-stranger -> bh-acme-serve/vectors 6333/TCP: enters tenant acme",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [(m, e) for _, m, e in MUTATIONS], ids=[i for i, _, _ in MUTATIONS]
)
def test_mutation_breaks_the_proof(mutate: Callable[[list[Obj]], None], expected: str) -> None:
    objects = good()
    mutate(objects)
    findings = isolation_findings(objects)
    assert any(expected in f for f in findings), findings


def test_with_ips_gives_distinct_pod_addresses() -> None:
    pods = with_ips([Pod("a", "x"), Pod("a", "y")])
    assert [p.ips for p in pods] == [("10.244.0.1",), ("10.244.0.2",)]


def test_the_environment_names_the_gateway_and_extra_probes() -> None:
    env = Environment(platform_namespace="platform", probes=(Probe(9999),))
    matrix, pods = isolation_matrix(good(), env)
    assert Probe(9999) in matrix.probes
    assert "platform/stand-in-gateway" in {p.key for p in pods}
    # The rendered policies name the "bulkhead" namespace: a gateway elsewhere reaches nothing.
    assert matrix.sources_of(Pod("bh-acme-serve", "vllm-m1")) == set()
    assert isolation_findings(good(), env) == []
