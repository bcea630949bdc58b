"""The Pod Security and multi-tenancy checkers: a minimal good set passes, each mutation fails.

The Pod Security rules are those of kubernetes.io/docs/concepts/security/pod-security-standards
(baseline and restricted, current version).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from bulkhead.k8s.checks import multi_tenancy, pod_security_restricted

NS = "bh-acme-serve"
Obj = dict[str, Any]


def container(name: str) -> Obj:
    return {
        "name": name,
        "image": "registry.example/bulkhead@sha256:" + "0" * 64,
        "ports": [{"containerPort": 8000, "name": "http"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "appArmorProfile": {"type": "RuntimeDefault"},
        },
    }


def pod_spec() -> Obj:
    return {
        "serviceAccountName": "model-server",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [container("decrypt")],
        "containers": [container("vllm")],
        "volumes": [
            {"name": "weights", "emptyDir": {"medium": "Memory"}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
        ],
    }


def meta(kind: str, name: str, api: str = "v1") -> Obj:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NS}}


def deployment() -> Obj:
    return {
        **meta("Deployment", "vllm-m", "apps/v1"),
        "spec": {"template": {"metadata": {"labels": {"app": "vllm"}}, "spec": pod_spec()}},
    }


def good_objects() -> list[Obj]:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NS,
            "labels": {
                "bulkhead.dev/tenant": "acme",
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }
    quota = {
        **meta("ResourceQuota", "quota"),
        "spec": {
            "hard": {
                "requests.cpu": "8",
                "limits.memory": "64Gi",
                "requests.ephemeral-storage": "10Gi",
                "pods": "20",
                "services": "5",
                "secrets": "10",
                "persistentvolumeclaims": "2",
                "requests.storage": "100Gi",
            }
        },
    }
    limits = {
        **meta("LimitRange", "defaults"),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "1", "memory": "1Gi"},
                    "defaultRequest": {"cpu": "500m", "memory": "512Mi"},
                }
            ]
        },
    }
    deny = {
        **meta("NetworkPolicy", "default-deny", "networking.k8s.io/v1"),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    account = {**meta("ServiceAccount", "model-server"), "automountServiceAccountToken": False}
    role = {
        **meta("Role", "tenant-admin", "rbac.authorization.k8s.io/v1"),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods", "pods/log", "events"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }
    binding = {
        **meta("RoleBinding", "tenant-admin", "rbac.authorization.k8s.io/v1"),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "tenant-admin",
        },
        "subjects": [
            {"kind": "User", "name": "acme-admin", "apiGroup": "rbac.authorization.k8s.io"}
        ],
    }
    return [namespace, quota, limits, deny, account, role, binding, deployment()]


def find(objects: list[Obj], kind: str) -> Obj:
    return next(o for o in objects if o["kind"] == kind)


def template_spec(objects: list[Obj]) -> Obj:
    return find(objects, "Deployment")["spec"]["template"]["spec"]


def first(objects: list[Obj], group: str = "containers") -> Obj:
    return template_spec(objects)[group][0]["securityContext"]


def test_good_objects_pass() -> None:
    objects = good_objects()
    assert pod_security_restricted(objects) == []
    assert pod_security_restricted(objects, require_apparmor=True) == []
    assert multi_tenancy(objects) == []


Mutation = Callable[[list[Obj]], None]

PSS_MUTATIONS: list[tuple[str, Mutation, str]] = [
    ("hostNetwork", lambda o: template_spec(o).update(hostNetwork=True), "spec.hostNetwork"),
    ("hostPID", lambda o: template_spec(o).update(hostPID=True), "spec.hostPID"),
    ("hostIPC", lambda o: template_spec(o).update(hostIPC=True), "spec.hostIPC"),
    (
        "hostProcess",
        lambda o: template_spec(o)["securityContext"].update(windowsOptions={"hostProcess": True}),
        "hostProcess",
    ),
    (
        "hostPath",
        lambda o: template_spec(o)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "volumes[2].hostPath",
    ),
    (
        "nfs volume",
        lambda o: template_spec(o)["volumes"].append(
            {"name": "n", "nfs": {"server": "x", "path": "/"}}
        ),
        "volumes[2].nfs",
    ),
    (
        "privileged",
        lambda o: first(o).update(privileged=True),
        "containers[0].securityContext.privileged",
    ),
    (
        "init privileged",
        lambda o: first(o, "initContainers").update(privileged=True),
        "initContainers[0].securityContext.privileged",
    ),
    (
        "ephemeral container",
        lambda o: template_spec(o).update(
            ephemeralContainers=[{"name": "debug", "image": "busybox"}]
        ),
        "ephemeralContainers[0].securityContext.allowPrivilegeEscalation",
    ),
    (
        "cap SYS_ADMIN",
        lambda o: first(o)["capabilities"].update(add=["SYS_ADMIN"]),
        "SYS_ADMIN is refused (baseline)",
    ),
    (
        "cap CHOWN",
        lambda o: first(o)["capabilities"].update(add=["CHOWN"]),
        "CHOWN is refused (restricted)",
    ),
    ("drop not ALL", lambda o: first(o)["capabilities"].update(drop=["NET_RAW"]), "must drop ALL"),
    (
        "hostPort",
        lambda o: template_spec(o)["containers"][0]["ports"][0].update(hostPort=8000),
        "ports[0].hostPort",
    ),
    (
        "apparmor unconfined",
        lambda o: first(o).update(appArmorProfile={"type": "Unconfined"}),
        "containers[0].securityContext.appArmorProfile.type",
    ),
    (
        "pod apparmor unconfined",
        lambda o: template_spec(o)["securityContext"].update(
            appArmorProfile={"type": "Unconfined"}
        ),
        "spec.securityContext.appArmorProfile.type",
    ),
    (
        "apparmor annotation",
        lambda o: find(o, "Deployment")["spec"]["template"]["metadata"].update(
            annotations={"container.apparmor.security.beta.kubernetes.io/vllm": "unconfined"}
        ),
        "AppArmor must be runtime/default",
    ),
    (
        "selinux type",
        lambda o: first(o).update(seLinuxOptions={"type": "spc_t"}),
        "seLinuxOptions.type",
    ),
    (
        "selinux user",
        lambda o: template_spec(o)["securityContext"].update(seLinuxOptions={"user": "root"}),
        "seLinuxOptions.user",
    ),
    ("procMount", lambda o: first(o).update(procMount="Unmasked"), "procMount"),
    (
        "seccomp unconfined",
        lambda o: template_spec(o)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile.type",
    ),
    (
        "seccomp missing",
        lambda o: template_spec(o)["securityContext"].pop("seccompProfile"),
        "must be RuntimeDefault or Localhost",
    ),
    (
        "container seccomp unconfined",
        lambda o: first(o).update(seccompProfile={"type": "Unconfined"}),
        "containers[0].securityContext.seccompProfile.type",
    ),
    (
        "sysctl",
        lambda o: template_spec(o)["securityContext"].update(
            sysctls=[{"name": "kernel.msgmax", "value": "1"}]
        ),
        "sysctls[0]",
    ),
    (
        "allowPrivilegeEscalation",
        lambda o: first(o).pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
    ),
    (
        "runAsNonRoot missing",
        lambda o: template_spec(o)["securityContext"].pop("runAsNonRoot"),
        "runAsNonRoot: must be true",
    ),
    ("container runAsNonRoot false", lambda o: first(o).update(runAsNonRoot=False), "runAsNonRoot"),
    (
        "container runAsUser 0",
        lambda o: first(o).update(runAsUser=0),
        "containers[0].securityContext.runAsUser",
    ),
    (
        "pod runAsUser 0",
        lambda o: template_spec(o)["securityContext"].update(runAsUser=0),
        "spec.securityContext.runAsUser",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [(m, e) for _, m, e in PSS_MUTATIONS],
    ids=[i for i, _, _ in PSS_MUTATIONS],
)
def test_pod_security_mutation_is_found(mutate: Mutation, expected: str) -> None:
    objects = good_objects()
    mutate(objects)
    findings = pod_security_restricted(objects)
    assert findings, "the mutation went unnoticed"
    assert any(expected in f for f in findings), findings
    assert all(f.startswith("Deployment bh-acme-serve/vllm-m: spec.template.") for f in findings)


def test_require_apparmor_asks_every_container_for_a_profile() -> None:
    objects = good_objects()
    first(objects).pop("appArmorProfile")
    assert pod_security_restricted(objects) == []
    assert pod_security_restricted(objects, require_apparmor=True) == [
        "Deployment bh-acme-serve/vllm-m: spec.template.spec.containers[0].securityContext"
        ".appArmorProfile.type: no AppArmor profile is set"
    ]
    find(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/vllm": "runtime/default"
    }
    assert pod_security_restricted(objects, require_apparmor=True) == []


@pytest.mark.parametrize(
    ("kind", "wrap"),
    [
        ("Pod", lambda spec: {"spec": spec}),
        ("StatefulSet", lambda spec: {"spec": {"template": {"spec": spec}}}),
        ("DaemonSet", lambda spec: {"spec": {"template": {"spec": spec}}}),
        ("ReplicaSet", lambda spec: {"spec": {"template": {"spec": spec}}}),
        ("Job", lambda spec: {"spec": {"template": {"spec": spec}}}),
        ("CronJob", lambda spec: {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
    ],
)
def test_every_workload_kind_is_checked(kind: str, wrap: Callable[[Obj], Obj]) -> None:
    good = {"kind": kind, "metadata": {"name": "w", "namespace": NS}, **wrap(pod_spec())}
    assert pod_security_restricted([good]) == []
    bad_spec = pod_spec()
    bad_spec["containers"][0]["securityContext"]["privileged"] = True
    bad = {"kind": kind, "metadata": {"name": "w", "namespace": NS}, **wrap(bad_spec)}
    assert [f for f in pod_security_restricted([bad]) if "privileged" in f]


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
