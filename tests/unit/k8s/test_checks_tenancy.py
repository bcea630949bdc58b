"""The multi-tenancy checker: a minimal good tenant namespace passes, each mutation fails."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bulkhead.k8s.checks import multi_tenancy
from tests.unit.k8s.tenant_objects import Mutation, Obj, find, good_objects, template_spec


def rule(objects: list[Obj], **fields: Any) -> None:
    find(objects, "Role")["rules"].append(
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], **fields}
    )


def drop(kind: str) -> Mutation:
    return lambda o: o.remove(find(o, kind))


def ns_labels(o: list[Obj]) -> dict[str, str]:
    labels: dict[str, str] = find(o, "Namespace")["metadata"]["labels"]
    return labels


def hard(o: list[Obj]) -> dict[str, str]:
    value: dict[str, str] = find(o, "ResourceQuota")["spec"]["hard"]
    return value


MT_MUTATIONS: list[tuple[str, Mutation, str]] = [
    (
        "cluster role ref",
        lambda o: find(o, "RoleBinding")["roleRef"].update(kind="ClusterRole"),
        "roleRef.kind",
    ),
    (
        "missing role",
        lambda o: find(o, "RoleBinding")["roleRef"].update(name="nope"),
        "roleRef.name",
    ),
    (
        "cluster role binding",
        lambda o: o.append(
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "x"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "acme-admin"}],
            }
        ),
        "binds tenant subjects cluster-wide",
    ),
    (
        "binding elsewhere",
        lambda o: o.append(
            {
                "kind": "RoleBinding",
                "metadata": {"name": "x", "namespace": "bulkhead"},
                "roleRef": {"kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "acme-admin"}],
            }
        ),
        "outside its namespaces",
    ),
    (
        "cluster role binding of the tenant's accounts",
        lambda o: o.append(
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "x"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Group", "name": "system:serviceaccounts:bh-acme-serve"}],
            }
        ),
        "binds tenant subjects cluster-wide ['Group system:serviceaccounts:bh-acme-serve']",
    ),
    (
        "role binding to every authenticated user",
        lambda o: find(o, "RoleBinding")["subjects"].append(
            {"kind": "Group", "name": "system:authenticated"}
        ),
        "binds Group system:authenticated",
    ),
    ("verb namespaces", lambda o: rule(o, resources=["namespaces"]), "resources: namespaces"),
    ("quotas", lambda o: rule(o, resources=["resourcequotas"], verbs=["update"]), "resourcequotas"),
    ("limitranges", lambda o: rule(o, resources=["limitranges"], verbs=["delete"]), "limitranges"),
    (
        "networkpolicies",
        lambda o: rule(
            o, apiGroups=["networking.k8s.io"], resources=["networkpolicies"], verbs=["patch"]
        ),
        "networkpolicies",
    ),
    (
        "roles",
        lambda o: rule(o, apiGroups=["rbac.authorization.k8s.io"], resources=["roles"]),
        "roles",
    ),
    (
        "rolebindings",
        lambda o: rule(o, apiGroups=["rbac.authorization.k8s.io"], resources=["rolebindings"]),
        "rolebindings",
    ),
    ("cluster-scoped nodes", lambda o: rule(o, resources=["nodes"]), "resources: nodes"),
    ("escalate", lambda o: rule(o, verbs=["escalate"]), "verbs: escalate"),
    ("bind", lambda o: rule(o, verbs=["bind"]), "verbs: bind"),
    (
        "impersonate",
        lambda o: rule(o, resources=["users"], verbs=["impersonate"]),
        "verbs: impersonate",
    ),
    ("exec", lambda o: rule(o, resources=["pods/exec"], verbs=["create"]), "pods/exec"),
    ("attach", lambda o: rule(o, resources=["pods/attach"], verbs=["get"]), "pods/attach"),
    (
        "portforward",
        lambda o: rule(o, resources=["pods/portforward"], verbs=["create"]),
        "pods/portforward",
    ),
    ("secrets", lambda o: rule(o, resources=["secrets"], verbs=["list"]), "resources: secrets"),
    ("wildcard verbs", lambda o: rule(o, verbs=["*"]), "verbs: wildcard"),
    ("wildcard resources", lambda o: rule(o, resources=["*"]), "resources: wildcard"),
    ("wildcard groups", lambda o: rule(o, apiGroups=["*"]), "apiGroups: wildcard"),
    ("no quota", drop("ResourceQuota"), "caps cpu"),
    ("quota lacks cpu", lambda o: hard(o).pop("requests.cpu"), "caps cpu"),
    ("quota lacks memory", lambda o: hard(o).pop("limits.memory"), "caps memory"),
    ("quota lacks pods", lambda o: hard(o).pop("pods"), "caps pods"),
    ("quota lacks services", lambda o: hard(o).pop("services"), "caps services"),
    ("quota lacks secrets", lambda o: hard(o).pop("secrets"), "caps secrets"),
    (
        "quota lacks pvcs",
        lambda o: hard(o).pop("persistentvolumeclaims"),
        "caps persistentvolumeclaims",
    ),
    ("quota lacks storage", lambda o: hard(o).pop("requests.storage"), "caps requests.storage"),
    (
        "quota lacks ephemeral",
        lambda o: hard(o).pop("requests.ephemeral-storage"),
        "caps ephemeral storage",
    ),
    (
        "scoped quota only",
        lambda o: find(o, "ResourceQuota")["spec"].update(scopes=["BestEffort"]),
        "caps cpu",
    ),
    ("no limitrange", drop("LimitRange"), "LimitRange"),
    (
        "limitrange without defaults",
        lambda o: find(o, "LimitRange")["spec"]["limits"][0].update(
            default={}, defaultRequest={"cpu": "1"}
        ),
        "LimitRange",
    ),
    ("no default deny", drop("NetworkPolicy"), "default-deny NetworkPolicy for Ingress"),
    (
        "deny ingress only",
        lambda o: find(o, "NetworkPolicy")["spec"].update(policyTypes=["Ingress"]),
        "default-deny NetworkPolicy for Egress",
    ),
    (
        "deny with a rule",
        lambda o: find(o, "NetworkPolicy")["spec"].update(egress=[{}]),
        "default-deny NetworkPolicy for Egress",
    ),
    (
        "deny selects some pods",
        lambda o: find(o, "NetworkPolicy")["spec"].update(podSelector={"matchLabels": {"a": "b"}}),
        "default-deny NetworkPolicy for Ingress",
    ),
    (
        "sa automount",
        lambda o: find(o, "ServiceAccount").pop("automountServiceAccountToken"),
        "automountServiceAccountToken must be false",
    ),
    (
        "pod on default sa",
        lambda o: template_spec(o).pop("serviceAccountName"),
        "ServiceAccount bh-acme-serve/default",
    ),
    (
        "pod overrides automount",
        lambda o: template_spec(o).update(automountServiceAccountToken=True),
        "the pod mounts a token",
    ),
    (
        "no enforce",
        lambda o: ns_labels(o).pop("pod-security.kubernetes.io/enforce"),
        "enforce] != restricted",
    ),
    (
        "enforce baseline",
        lambda o: ns_labels(o).update({"pod-security.kubernetes.io/enforce": "baseline"}),
        "enforce] != restricted",
    ),
    (
        "no warn",
        lambda o: ns_labels(o).pop("pod-security.kubernetes.io/warn"),
        "warn] != restricted",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [(m, e) for _, m, e in MT_MUTATIONS],
    ids=[i for i, _, _ in MT_MUTATIONS],
)
def test_multi_tenancy_mutation_is_found(mutate: Mutation, expected: str) -> None:
    objects = good_objects()
    mutate(objects)
    findings = multi_tenancy(objects)
    assert any(expected in f for f in findings), findings


def test_pvc_storage_need_not_be_capped_when_pvcs_are_zero() -> None:
    objects = good_objects()
    hard(objects).pop("requests.storage")
    hard(objects)["persistentvolumeclaims"] = "0"
    assert multi_tenancy(objects) == []


def test_a_subject_of_two_tenants_is_found() -> None:
    objects = good_objects()
    other = copy.deepcopy(objects)
    for obj in other:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = "bh-other-serve"
            obj["metadata"]["labels"]["bulkhead.dev/tenant"] = "other"
        else:
            obj["metadata"]["namespace"] = "bh-other-serve"
    findings = multi_tenancy(objects + other)
    assert findings == [
        "User acme-admin: bound in the namespaces of several tenants ['acme', 'other']"
    ]


def test_namespaces_without_the_tenant_label_are_not_tenants() -> None:
    objects = good_objects()
    ns_labels(objects).pop("bulkhead.dev/tenant")
    objects.remove(find(objects, "ResourceQuota"))
    assert multi_tenancy(objects) == []
