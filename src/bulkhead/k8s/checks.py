"""Checkers over rendered objects: each returns findings (one string per broken rule; [] = pass).

`pod_security_restricted` is the Pod Security Standards' `restricted` profile
(see `_pss`). `multi_tenancy` holds the tenant namespaces to rules in the
spirit of the Kubernetes multi-tenancy benchmarks (MTB): a tenant's
namespaces are the Namespace objects labelled `bulkhead.dev/tenant`; its
subjects are the subjects of the RoleBindings in them and the
ServiceAccounts that live there.

- RBAC: a tenant subject is bound only by RoleBindings inside its own
  tenant's namespaces, only to Roles (never a ClusterRole, never through a
  ClusterRoleBinding); no Role there grants a wildcard, a verb among
  escalate/bind/impersonate, or any verb on the resources a tenant must not
  touch (namespaces, quotas, limit ranges, network policies, RBAC, secrets,
  exec/attach/port-forward, ephemeral containers, anything cluster-scoped).
  Nor may a tenant's Role create or change pods or anything that makes them (jobs,
  cron jobs, deployments, replica sets, stateful sets, daemon sets, replication
  controllers).  One platform role is accepted, in exactly its rendered form: the
  gateway's `bh-gateway-training` in a training namespace
  (`render.training.GATEWAY_TRAINING_RULES`: create/get/delete jobs, read pods,
  attach to them), bound only to ServiceAccounts of the platform namespace, which
  therefore are not tenant subjects; any other rule in it, any other subject bound
  to it, or the role in a serve namespace is a finding.
- Quotas: every tenant namespace has an unscoped ResourceQuota capping cpu,
  memory, ephemeral storage, pods, services, secrets and PVCs (and PVC
  storage unless PVCs are capped at 0), and a LimitRange giving containers
  default cpu and memory.
- Network: a default-deny NetworkPolicy (every pod, no rules) for ingress and
  for egress in every tenant namespace.
- Tokens: no pod there mounts a service account token (the pod or its
  ServiceAccount says `automountServiceAccountToken: false`; the implicit
  `default` account mounts one) and every ServiceAccount there says false.
- Pod Security: enforce, audit and warn labels `restricted` on each.

Pod-level host access (hostPath, host namespaces, privileged) is the
business of `pod_security_restricted`; run both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bulkhead.k8s._pss import pod_security_restricted
from bulkhead.k8s._selectors import describe, labels_of, name_of, namespace_of, of_kind
from bulkhead.k8s._templates import pod_templates
from bulkhead.k8s.netpol import EGRESS, INGRESS, policy_types
from bulkhead.k8s.render.training import GATEWAY_TRAINING_ROLE, GATEWAY_TRAINING_RULES

__all__ = ["TENANT_LABEL", "multi_tenancy", "pod_security_restricted"]

TENANT_LABEL = "bulkhead.dev/tenant"
POD_SECURITY = "pod-security.kubernetes.io/"

FORBIDDEN_VERBS = frozenset({"escalate", "bind", "impersonate"})
FORBIDDEN_RESOURCES = frozenset(
    {
        "namespaces", "resourcequotas", "limitranges", "networkpolicies", "roles",
        "rolebindings", "secrets",
    }
)  # fmt: skip
"""Refused with every subresource (`resourcequotas/status` too)."""
FORBIDDEN_SUBRESOURCES = frozenset(
    {
        "pods/exec", "pods/attach", "pods/portforward", "pods/ephemeralcontainers",
        "pods/proxy", "services/proxy", "serviceaccounts/token",
    }
)  # fmt: skip
WORKLOADS = frozenset(
    {
        "pods", "jobs", "cronjobs", "deployments", "replicasets", "statefulsets",
        "daemonsets", "replicationcontrollers",
    }
)  # fmt: skip
"""No tenant role may create or change these (`WRITE_VERBS`): each makes pods."""
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
PLATFORM_ROLES: Mapping[str, tuple[Mapping[str, Any], ...]] = {
    GATEWAY_TRAINING_ROLE: GATEWAY_TRAINING_RULES
}
"""Platform roles in tenant namespaces, each accepted only with exactly these rules."""
CLUSTER_SCOPED = frozenset(
    {
        "nodes", "persistentvolumes", "clusterroles", "clusterrolebindings",
        "customresourcedefinitions", "storageclasses", "priorityclasses", "runtimeclasses",
        "validatingwebhookconfigurations", "mutatingwebhookconfigurations",
        "validatingadmissionpolicies", "validatingadmissionpolicybindings",
        "mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "apiservices",
        "certificatesigningrequests", "csidrivers", "csinodes", "volumeattachments",
        "ingressclasses", "podsecuritypolicies", "componentstatuses", "flowschemas",
        "prioritylevelconfigurations", "clustertrustbundles", "deviceclasses",
        "resourceslices", "volumeattributesclasses", "ipaddresses", "servicecidrs",
    }
)  # fmt: skip

QUOTA_NEEDS: dict[str, tuple[str, ...]] = {
    "cpu": ("cpu", "requests.cpu", "limits.cpu"),
    "memory": ("memory", "requests.memory", "limits.memory"),
    "ephemeral storage": (
        "ephemeral-storage", "requests.ephemeral-storage", "limits.ephemeral-storage",
    ),
    "pods": ("pods", "count/pods"),
    "services": ("services", "count/services"),
    "secrets": ("secrets", "count/secrets"),
    "persistentvolumeclaims": ("persistentvolumeclaims", "count/persistentvolumeclaims"),
}  # fmt: skip


def multi_tenancy(
    objects: Sequence[Mapping[str, Any]],
    *,
    tenant_label: str = TENANT_LABEL,
    platform_namespace: str = "bulkhead",
) -> list[str]:
    """Findings against the multi-tenancy rules above for every tenant namespace in `objects`."""
    tenants = {
        name_of(ns): labels_of(ns)[tenant_label]
        for ns in of_kind(objects, "Namespace")
        if tenant_label in labels_of(ns)
    }
    findings = list(_platform_roles(objects, tenants, platform_namespace))
    findings += _rbac([o for o in objects if not _platform_binding(o, platform_namespace)], tenants)
    for namespace in sorted(tenants):
        inside = [obj for obj in objects if _in_namespace(obj, namespace)]
        findings.extend(_namespace_labels(objects, namespace))
        findings.extend(_quotas(inside, namespace))
        findings.extend(_default_deny(inside, namespace))
        findings.extend(_tokens(inside, namespace))
    return findings


def _in_namespace(obj: Mapping[str, Any], namespace: str) -> bool:
    return obj.get("kind") != "Namespace" and namespace_of(obj) == namespace


def _subject_key(subject: Mapping[str, Any], binding_namespace: str) -> str:
    kind = str(subject.get("kind"))
    if kind == "ServiceAccount":
        return (
            f"ServiceAccount {subject.get('namespace') or binding_namespace}/{subject.get('name')}"
        )
    return f"{kind} {subject.get('name')}"


def _tenant_subjects(
    objects: Sequence[Mapping[str, Any]], tenants: Mapping[str, str]
) -> dict[str, set[str]]:
    """Each tenant subject and the tenants whose namespaces bind it or hold it."""
    owners: dict[str, set[str]] = {}
    for binding in of_kind(objects, "RoleBinding"):
        namespace = namespace_of(binding)
        if namespace in tenants:
            for subject in binding.get("subjects") or ():
                owners.setdefault(_subject_key(subject, namespace), set()).add(tenants[namespace])
    for account in of_kind(objects, "ServiceAccount"):
        namespace = namespace_of(account)
        if namespace in tenants:
            key = f"ServiceAccount {namespace}/{name_of(account)}"
            owners.setdefault(key, set()).add(tenants[namespace])
    return owners


def _broad(key: str, tenants: Mapping[str, str]) -> bool:
    """Whether a subject is a group holding every user, every account, or a tenant's accounts."""
    groups = {"system:authenticated", "system:unauthenticated", "system:serviceaccounts"}
    groups.update(f"system:serviceaccounts:{namespace}" for namespace in tenants)
    return key.startswith("Group ") and key.removeprefix("Group ") in groups


def _rbac(objects: Sequence[Mapping[str, Any]], tenants: Mapping[str, str]) -> Iterator[str]:
    subjects = _tenant_subjects(objects, tenants)
    for key, owners in sorted(subjects.items()):
        if len(owners) > 1:
            yield f"{key}: bound in the namespaces of several tenants {sorted(owners)}"
    for binding in of_kind(objects, "ClusterRoleBinding"):
        keys = {_subject_key(s, "") for s in binding.get("subjects") or ()}
        bound = keys & set(subjects) | {k for k in keys if _broad(k, tenants)}
        if bound or TENANT_LABEL in labels_of(binding):
            yield f"{describe(binding)}: binds tenant subjects cluster-wide {sorted(bound)}"
    for binding in of_kind(objects, "RoleBinding"):
        if namespace_of(binding) in tenants:
            for subject in binding.get("subjects") or ():
                key = _subject_key(subject, namespace_of(binding))
                if _broad(key, {}):
                    yield f"{describe(binding)}: binds {key}, which holds other tenants' users"
    roles = {(namespace_of(r), name_of(r)): r for r in of_kind(objects, "Role")}
    for binding in of_kind(objects, "RoleBinding"):
        namespace = namespace_of(binding)
        ref = binding.get("roleRef") or {}
        if namespace not in tenants:
            for subject in binding.get("subjects") or ():
                key = _subject_key(subject, namespace)
                if key in subjects:
                    yield f"{describe(binding)}: binds tenant subject {key} outside its namespaces"
            continue
        if ref.get("kind") != "Role":
            yield f"{describe(binding)}: roleRef.kind: tenants are bound to Roles only"
        elif (namespace, ref.get("name")) not in roles:
            yield f"{describe(binding)}: roleRef.name: Role {ref.get('name')} is not rendered"
    for (namespace, name), role in sorted(roles.items()):
        if namespace in tenants and name not in PLATFORM_ROLES:  # those: `_platform_roles`
            yield from _role_rules(role)


def _platform_binding(obj: Mapping[str, Any], platform_namespace: str) -> bool:
    """A RoleBinding of a platform role to ServiceAccounts of the platform namespace only."""
    if obj.get("kind") != "RoleBinding":
        return False
    ref = obj.get("roleRef") or {}
    subjects = obj.get("subjects") or ()
    return (
        ref.get("kind") == "Role"
        and ref.get("name") in PLATFORM_ROLES
        and bool(subjects)
        and all(
            s.get("kind") == "ServiceAccount" and s.get("namespace") == platform_namespace
            for s in subjects
        )
    )


def _normal(rules: Any) -> list[tuple[tuple[str, ...], ...]]:
    return sorted(
        tuple(tuple(sorted(str(v) for v in rule.get(k) or ())) for k in
              ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"))
        for rule in rules or ()
    )  # fmt: skip


def _platform_roles(
    objects: Sequence[Mapping[str, Any]], tenants: Mapping[str, str], platform_namespace: str
) -> Iterator[str]:
    """Each platform role in a tenant namespace: its exact rules, in a training namespace,
    bound only to the platform's ServiceAccounts."""
    for role in of_kind(objects, "Role"):
        name, namespace = name_of(role), namespace_of(role)
        if name not in PLATFORM_ROLES or namespace not in tenants:
            continue
        if not namespace.endswith("-train"):
            yield f"{describe(role)}: the gateway's training role outside a training namespace"
        if _normal(role.get("rules")) != _normal(PLATFORM_ROLES[name]):
            yield f"{describe(role)}: rules differ from the gateway's training access"
    for binding in of_kind(objects, "RoleBinding"):
        ref = binding.get("roleRef") or {}
        if (
            namespace_of(binding) in tenants
            and ref.get("name") in PLATFORM_ROLES
            and not _platform_binding(binding, platform_namespace)
        ):
            yield f"{describe(binding)}: binds the gateway's training role to another subject"


def _role_rules(role: Mapping[str, Any]) -> Iterator[str]:
    for index, rule in enumerate(role.get("rules") or ()):
        where = f"{describe(role)}: rules[{index}]"
        verbs = {str(v) for v in rule.get("verbs") or ()}
        resources = {str(r) for r in rule.get("resources") or ()}
        groups = {str(g) for g in rule.get("apiGroups") or ()}
        for field, values in (("verbs", verbs), ("resources", resources), ("apiGroups", groups)):
            if "*" in values or any(v.endswith("/*") for v in values):
                yield f"{where}.{field}: wildcard"
        for verb in sorted(verbs & FORBIDDEN_VERBS):
            yield f"{where}.verbs: {verb}"
        for resource in sorted(resources):
            base = resource.split("/")[0]
            if (
                base in FORBIDDEN_RESOURCES
                or base in CLUSTER_SCOPED
                or resource in FORBIDDEN_SUBRESOURCES
            ):
                yield f"{where}.resources: {resource}"
            elif base in WORKLOADS and verbs & WRITE_VERBS:
                yield f"{where}.resources: {resource}: {sorted(verbs & WRITE_VERBS)} makes pods"
        if rule.get("nonResourceURLs"):
            yield f"{where}.nonResourceURLs: cluster-scoped"


def _namespace_labels(objects: Sequence[Mapping[str, Any]], namespace: str) -> Iterator[str]:
    for ns in of_kind(objects, "Namespace"):
        if name_of(ns) == namespace:
            labels = labels_of(ns)
            for mode in ("enforce", "audit", "warn"):
                if labels.get(POD_SECURITY + mode) != "restricted":
                    yield f"{describe(ns)}: metadata.labels[{POD_SECURITY}{mode}] != restricted"


def _quotas(inside: Sequence[Mapping[str, Any]], namespace: str) -> Iterator[str]:
    hard: dict[str, Any] = {}
    for quota in of_kind(inside, "ResourceQuota"):
        spec = quota.get("spec") or {}
        if not spec.get("scopes") and not spec.get("scopeSelector"):
            hard.update(spec.get("hard") or {})
    for need, keys in QUOTA_NEEDS.items():
        if not any(key in hard for key in keys):
            yield f"Namespace {namespace}: no ResourceQuota caps {need}"
    if "requests.storage" not in hard and str(_pvc_cap(hard)) != "0":
        yield f"Namespace {namespace}: no ResourceQuota caps requests.storage"
    if not any(_defaults_containers(lr) for lr in of_kind(inside, "LimitRange")):
        yield f"Namespace {namespace}: no LimitRange gives containers default cpu and memory"


def _pvc_cap(hard: Mapping[str, Any]) -> Any:
    return hard.get("persistentvolumeclaims", hard.get("count/persistentvolumeclaims"))


def _defaults_containers(limit_range: Mapping[str, Any]) -> bool:
    for item in (limit_range.get("spec") or {}).get("limits") or ():
        if item.get("type") == "Container":
            defaults = {**(item.get("defaultRequest") or {}), **(item.get("default") or {})}
            if {"cpu", "memory"} <= set(defaults):
                return True
    return False


def _default_deny(inside: Sequence[Mapping[str, Any]], namespace: str) -> Iterator[str]:
    denied: set[str] = set()
    for policy in of_kind(inside, "NetworkPolicy"):
        spec = policy.get("spec") or {}
        if spec.get("podSelector"):
            continue
        types = policy_types(policy)
        if INGRESS in types and not spec.get("ingress"):
            denied.add(INGRESS)
        if EGRESS in types and not spec.get("egress"):
            denied.add(EGRESS)
    for direction in (INGRESS, EGRESS):
        if direction not in denied:
            yield f"Namespace {namespace}: no default-deny NetworkPolicy for {direction}"


def _tokens(inside: Sequence[Mapping[str, Any]], namespace: str) -> Iterator[str]:
    accounts = {name_of(a): a for a in of_kind(inside, "ServiceAccount")}
    for sa in accounts.values():
        if sa.get("automountServiceAccountToken") is not False:
            yield f"{describe(sa)}: automountServiceAccountToken must be false"
    for template in pod_templates(inside):
        own = template.spec.get("automountServiceAccountToken")
        name = str(template.spec.get("serviceAccountName") or "default")
        account = accounts.get(name)
        by_account = account.get("automountServiceAccountToken") if account else None
        if own is False or (own is None and by_account is False):
            continue
        yield (
            f"{template.where('spec.automountServiceAccountToken')}: the pod mounts a token"
            f" of ServiceAccount {namespace}/{name}"
        )
