"""The NetworkPolicy evaluator against cases from the Kubernetes documentation.

"Docs" below is kubernetes.io/docs/concepts/services-networking/network-policies/
(kubernetes/website content/en/docs/concepts/services-networking/network-policies.md);
the example policies are those of content/en/examples/service/networking/.
"""

from __future__ import annotations

from typing import Any

import pytest

from bulkhead.k8s.netpol import (
    ContainerPort,
    Pod,
    Policies,
    allowed,
    policy_types,
)


def ns(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def policy(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {}, **spec},
    }


DB = Pod("default", "db", {"role": "db"}, (ContainerPort(6379, "redis"),))
FRONTEND = Pod("default", "frontend", {"role": "frontend"})
OTHER = Pod("default", "other", {"role": "other"})
ALICE_CLIENT = Pod("alice", "client", {"role": "client"})
ALICE_WEB = Pod("alice", "web", {"role": "web"})
PROJECT_POD = Pod("myproject", "anything", {"role": "whatever"})

NAMESPACES = [ns("default"), ns("alice", user="alice"), ns("myproject", project="myproject")]


def test_no_policy_allows_everything() -> None:
    """Docs, "Isolated and Non-isolated Pods": by default pods are non-isolated."""
    assert allowed(FRONTEND, DB, 6379, "TCP", NAMESPACES)
    assert allowed(DB, "8.8.8.8", 53, "UDP", NAMESPACES)
    assert allowed("203.0.113.9", DB, 1, "SCTP", NAMESPACES)


def test_default_deny_ingress() -> None:
    """Docs, "Default deny all ingress traffic" (network-policy-default-deny-ingress.yaml)."""
    objects = [*NAMESPACES, policy("default", "default-deny-ingress", policyTypes=["Ingress"])]
    assert not allowed(FRONTEND, DB, 6379, "TCP", objects)
    assert not allowed("203.0.113.9", DB, 6379, "TCP", objects)
    # "This policy does not change the default egress isolation behavior."
    assert allowed(DB, "203.0.113.9", 443, "TCP", objects)
    # Pods in other namespaces are not selected.
    assert allowed(ALICE_CLIENT, ALICE_WEB, 80, "TCP", objects)


def test_default_allow_all_ingress_beats_isolation() -> None:
    """Docs, "Allow all ingress traffic" (network-policy-allow-all-ingress.yaml): additive."""
    objects = [
        *NAMESPACES,
        policy("default", "default-deny-ingress", policyTypes=["Ingress"]),
        policy("default", "allow-all-ingress", ingress=[{}], policyTypes=["Ingress"]),
    ]
    assert allowed(ALICE_CLIENT, DB, 6379, "TCP", objects)
    assert allowed("203.0.113.9", DB, 12345, "UDP", objects)


def test_default_deny_egress() -> None:
    """Docs, "Default deny all egress traffic" (network-policy-default-deny-egress.yaml)."""
    objects = [*NAMESPACES, policy("default", "default-deny-egress", policyTypes=["Egress"])]
    assert not allowed(DB, "203.0.113.9", 443, "TCP", objects)
    assert not allowed(DB, ALICE_WEB, 80, "TCP", objects)
    # Ingress stays open, from pods whose own egress is not isolated.
    assert allowed(ALICE_WEB, DB, 6379, "TCP", objects)
    # A connection needs egress at the source: default -> default is refused at the source.
    assert not allowed(FRONTEND, DB, 6379, "TCP", objects)


def test_default_allow_all_egress() -> None:
    """Docs, "Allow all egress traffic" (network-policy-allow-all-egress.yaml)."""
    objects = [
        *NAMESPACES,
        policy("default", "default-deny-egress", policyTypes=["Egress"]),
        policy("default", "allow-all-egress", egress=[{}], policyTypes=["Egress"]),
    ]
    assert allowed(DB, "2001:db8::1", 443, "TCP", objects)
    assert allowed(DB, ALICE_WEB, 80, "UDP", objects)


def test_default_deny_all() -> None:
    """Docs, "Default deny all ingress and all egress traffic".

    (network-policy-default-deny-all.yaml)
    """
    objects = [
        *NAMESPACES,
        policy("default", "default-deny-all", policyTypes=["Ingress", "Egress"]),
    ]
    assert not allowed(FRONTEND, OTHER, 80, "TCP", objects)
    assert not allowed(ALICE_WEB, DB, 6379, "TCP", objects)
    assert not allowed(DB, ALICE_WEB, 80, "TCP", objects)
    assert allowed(ALICE_CLIENT, ALICE_WEB, 80, "TCP", objects)


def example_policy() -> dict[str, Any]:
    """Docs, "The NetworkPolicy resource": test-network-policy."""
    return policy(
        "default",
        "test-network-policy",
        podSelector={"matchLabels": {"role": "db"}},
        policyTypes=["Ingress", "Egress"],
        ingress=[
            {
                "from": [
                    {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                    {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
                    {"podSelector": {"matchLabels": {"role": "frontend"}}},
                ],
                "ports": [{"protocol": "TCP", "port": 6379}],
            }
        ],
        egress=[
            {
                "to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                "ports": [{"protocol": "TCP", "port": 5978}],
            }
        ],
    )


def test_documented_example_ingress() -> None:
    """Docs, "The NetworkPolicy resource": the three sources of the example, on TCP 6379 only."""
    objects = [*NAMESPACES, example_policy()]
    assert allowed(FRONTEND, DB, 6379, "TCP", objects)
    assert allowed(PROJECT_POD, DB, 6379, "TCP", objects)
    assert allowed("172.17.0.1", DB, 6379, "TCP", objects)
    assert allowed("172.17.2.0", DB, 6379, "TCP", objects)
    assert allowed("172.17.255.255", DB, 6379, "TCP", objects)
    # 172.17.1.0/24 is carved out; outside the /16 is not listed.
    assert not allowed("172.17.1.7", DB, 6379, "TCP", objects)
    assert not allowed("172.18.0.1", DB, 6379, "TCP", objects)
    # The podSelector peer is for the policy's own namespace only.
    assert not allowed(Pod("alice", "frontend", {"role": "frontend"}), DB, 6379, "TCP", objects)
    assert not allowed(OTHER, DB, 6379, "TCP", objects)
    # Only TCP 6379.
    assert not allowed(FRONTEND, DB, 6380, "TCP", objects)
    assert not allowed(FRONTEND, DB, 6379, "UDP", objects)
    # Pods the policy does not select stay open.
    assert allowed(OTHER, FRONTEND, 1, "TCP", objects)


def test_documented_example_egress() -> None:
    """Docs, "The NetworkPolicy resource": db pods may reach 10.0.0.0/24 on TCP 5978 only."""
    objects = [*NAMESPACES, example_policy()]
    assert allowed(DB, "10.0.0.17", 5978, "TCP", objects)
    assert not allowed(DB, "10.0.1.17", 5978, "TCP", objects)
    assert not allowed(DB, "10.0.0.17", 5979, "TCP", objects)
    assert not allowed(DB, FRONTEND, 80, "TCP", objects)
    assert allowed(FRONTEND, "10.9.9.9", 1, "TCP", objects)


def test_namespace_and_pod_selector_in_one_peer_is_and() -> None:
    """Docs, "Behavior of to and from selectors": one `from` element with both selectors."""
    objects = [
        *NAMESPACES,
        policy(
            "default",
            "and",
            podSelector={"matchLabels": {"role": "db"}},
            ingress=[
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"user": "alice"}},
                            "podSelector": {"matchLabels": {"role": "client"}},
                        }
                    ]
                }
            ],
        ),
    ]
    assert allowed(ALICE_CLIENT, DB, 6379, "TCP", objects)
    assert not allowed(ALICE_WEB, DB, 6379, "TCP", objects)
    assert not allowed(Pod("default", "client", {"role": "client"}), DB, 6379, "TCP", objects)


def test_namespace_and_pod_selector_in_two_peers_is_or() -> None:
    """Docs, "Behavior of to and from selectors": two `from` elements are alternatives."""
    objects = [
        *NAMESPACES,
        policy(
            "default",
            "or",
            podSelector={"matchLabels": {"role": "db"}},
            ingress=[
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"user": "alice"}}},
                        {"podSelector": {"matchLabels": {"role": "client"}}},
                    ]
                }
            ],
        ),
    ]
    assert allowed(ALICE_CLIENT, DB, 6379, "TCP", objects)
    assert allowed(ALICE_WEB, DB, 6379, "TCP", objects)
    assert allowed(Pod("default", "client", {"role": "client"}), DB, 6379, "TCP", objects)
    assert not allowed(Pod("myproject", "client", {"role": "client"}), DB, 6379, "TCP", objects)
    assert not allowed(FRONTEND, DB, 6379, "TCP", objects)


def test_namespace_by_name_label_and_match_expressions() -> None:
    """Docs, "Targeting a Namespace by its name" and "Targeting multiple namespaces by label".

    `kubernetes.io/metadata.name` is set on every namespace, also one without a
    Namespace object here; `NotIn` holds where the label is absent.
    """
    by_name = policy(
        "default",
        "by-name",
        ingress=[
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "alice"}}}
                ]
            }
        ],
    )
    assert allowed(ALICE_WEB, DB, 1, "TCP", [*NAMESPACES, by_name])
    assert not allowed(PROJECT_POD, DB, 1, "TCP", [*NAMESPACES, by_name])
    assert allowed(Pod("unlisted", "x"), OTHER, 1, "TCP", [by_name]) is False
    expressions = policy(
        "default",
        "exprs",
        ingress=[
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [
                                {"key": "user", "operator": "NotIn", "values": ["alice"]},
                                {"key": "project", "operator": "Exists"},
                                {"key": "tier", "operator": "DoesNotExist"},
                            ]
                        },
                        "podSelector": {
                            "matchExpressions": [
                                {"key": "role", "operator": "In", "values": ["whatever", "x"]}
                            ]
                        },
                    }
                ]
            }
        ],
    )
    objects = [*NAMESPACES, expressions]
    assert allowed(PROJECT_POD, DB, 1, "TCP", objects)
    assert not allowed(ALICE_WEB, DB, 1, "TCP", objects)
    assert not allowed(Pod("myproject", "y", {"role": "y"}), DB, 1, "TCP", objects)
    tiered = [ns("default"), ns("myproject", project="p", tier="t"), expressions]
    assert not allowed(PROJECT_POD, DB, 1, "TCP", tiered)


def test_end_port_range() -> None:
    """Docs, "Targeting a range of ports": TCP 32000-32768 to 10.0.0.0/24 (multi-port-egress)."""
    objects = [
        policy(
            "default",
            "multi-port-egress",
            podSelector={"matchLabels": {"role": "db"}},
            policyTypes=["Egress"],
            egress=[
                {
                    "to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                    "ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}],
                }
            ],
        )
    ]
    for port in (32000, 32500, 32768):
        assert allowed(DB, "10.0.0.1", port, "TCP", objects)
    for port in (31999, 32769):
        assert not allowed(DB, "10.0.0.1", port, "TCP", objects)
    assert not allowed(DB, "10.0.0.1", 32000, "UDP", objects)


def test_named_port_resolves_against_the_destination() -> None:
    """API reference, NetworkPolicyPort.port: "a numerical or named port on a pod"; default TCP."""
    web = Pod(
        "default",
        "web",
        {"role": "web"},
        (ContainerPort(8080, "http"), ContainerPort(53, "dns", "UDP")),
    )
    objects = [
        policy(
            "default",
            "named-in",
            ingress=[{"ports": [{"port": "http"}, {"port": "dns", "protocol": "UDP"}]}],
        ),
        policy(
            "default",
            "named-out",
            policyTypes=["Egress"],
            egress=[{"ports": [{"port": "http"}, {"port": "dns", "protocol": "UDP"}]}],
        ),
    ]
    assert allowed(FRONTEND, web, 8080, "TCP", objects)
    assert allowed(FRONTEND, web, 53, "UDP", objects)
    assert not allowed(FRONTEND, web, 8080, "UDP", objects)
    assert not allowed(FRONTEND, web, 80, "TCP", objects)
    # db has no port named http: its 8080 is not open, and nothing outside has named ports.
    assert not allowed(FRONTEND, DB, 8080, "TCP", objects)
    assert not allowed(FRONTEND, "203.0.113.1", 8080, "TCP", objects)


def test_port_without_number_matches_every_port_of_its_protocol() -> None:
    """API reference, NetworkPolicyPort.port.

    "If this field is not provided, this matches all port names and numbers."
    """
    objects = [policy("default", "udp", ingress=[{"ports": [{"protocol": "UDP"}]}])]
    assert allowed(FRONTEND, DB, 9, "UDP", objects)
    assert not allowed(FRONTEND, DB, 9, "TCP", objects)


def test_policy_types_omitted_with_egress_rules() -> None:
    """Docs, "The NetworkPolicy resource", policyTypes.

    Ingress is always set; Egress when the policy has any egress rules.
    """
    only_egress_rules = policy(
        "default", "p", egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]
    )
    assert policy_types(only_egress_rules) == {"Ingress", "Egress"}
    objects = [only_egress_rules]
    assert not allowed(FRONTEND, DB, 6379, "TCP", objects)  # ingress isolated, no ingress rule
    assert allowed(DB, "10.1.2.3", 1, "TCP", objects)
    assert not allowed(DB, "192.0.2.1", 1, "TCP", objects)
    no_rules = policy("default", "q")
    assert policy_types(no_rules) == {"Ingress"}
    assert allowed(DB, "192.0.2.1", 1, "TCP", [no_rules])
    explicit = policy("default", "r", policyTypes=["Egress"], ingress=[])
    assert policy_types(explicit) == {"Egress"}
    assert allowed(FRONTEND, DB, 6379, "TCP", [explicit]) is False  # egress isolated at frontend
    assert allowed("192.0.2.1", DB, 6379, "TCP", [explicit])


def test_ipblock_ipv6_and_except() -> None:
    """API reference, IPBlock: cidr "192.168.1.0/24" or "2001:db8::/64"; except inside cidr."""
    objects = [
        policy(
            "default",
            "v6",
            policyTypes=["Egress"],
            egress=[
                {"to": [{"ipBlock": {"cidr": "2001:db8::/64", "except": ["2001:db8::/112"]}}]},
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}]},
            ],
        )
    ]
    assert allowed(DB, "2001:db8::1:0:1", 443, "TCP", objects)
    assert not allowed(DB, "2001:db8::5", 443, "TCP", objects)
    assert not allowed(DB, "2001:db9::5", 443, "TCP", objects)
    assert allowed(DB, "93.184.216.34", 443, "TCP", objects)
    assert not allowed(DB, "169.254.169.254", 80, "TCP", objects)


def test_ipblock_matches_pods_only_through_given_ips() -> None:
    """Docs, "Behavior of to and from selectors", ipBlock: meant for cluster-external IPs.

    Whether a plugin also applies it to pod IPs is undefined; the evaluator
    applies it to the IPs a `Pod` is given, and to none otherwise.
    """
    objects = [
        policy(
            "default",
            "any-ip",
            policyTypes=["Egress"],
            egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
        )
    ]
    assert not allowed(DB, ALICE_WEB, 80, "TCP", objects)
    assert allowed(DB, Pod("alice", "web", {}, ips=("10.244.3.4",)), 80, "TCP", objects)


def test_policies_are_per_namespace_and_additive() -> None:
    """Docs, "Isolated and Non-isolated Pods": policies select their own namespace's pods; union."""
    objects = [
        *NAMESPACES,
        policy("alice", "deny", policyTypes=["Ingress"]),
        policy(
            "alice",
            "web-from-default",
            podSelector={"matchLabels": {"role": "web"}},
            ingress=[
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "default"}
                            }
                        }
                    ]
                }
            ],
        ),
        policy(
            "alice",
            "web-from-project",
            podSelector={"matchLabels": {"role": "web"}},
            ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"project": "myproject"}}}]}],
        ),
    ]
    assert allowed(FRONTEND, ALICE_WEB, 80, "TCP", objects)
    assert allowed(PROJECT_POD, ALICE_WEB, 80, "TCP", objects)
    assert not allowed(ALICE_CLIENT, ALICE_WEB, 80, "TCP", objects)
    assert not allowed(FRONTEND, ALICE_CLIENT, 80, "TCP", objects)
    assert allowed(ALICE_CLIENT, FRONTEND, 80, "TCP", objects)


def test_bad_selectors_are_refused() -> None:
    """API validation refuses an unknown operator and a peer that selects nothing."""
    bad_op = policy(
        "default", "x", podSelector={"matchExpressions": [{"key": "a", "operator": "Gt"}]}
    )
    with pytest.raises(ValueError):
        allowed(FRONTEND, DB, 1, "TCP", [bad_op])
    empty_peer = policy("default", "y", ingress=[{"from": [{}]}])
    with pytest.raises(ValueError):
        allowed(FRONTEND, DB, 1, "TCP", [empty_peer])
    with pytest.raises(ValueError):
        Policies([]).allowed("192.0.2.1", "192.0.2.2", 1)
