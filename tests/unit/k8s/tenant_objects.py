"""A minimal good tenant namespace's objects for the checkers' tests, and helpers to mutate them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


Mutation = Callable[[list[Obj]], None]
