"""The Pod Security checker: a minimal good set passes, each mutation fails.

The rules are those of kubernetes.io/docs/concepts/security/pod-security-standards
(baseline and restricted, current version).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bulkhead.k8s.checks import multi_tenancy, pod_security_restricted
from tests.unit.k8s.tenant_objects import (
    NS,
    Mutation,
    Obj,
    find,
    first,
    good_objects,
    pod_spec,
    template_spec,
)


def test_good_objects_pass() -> None:
    objects = good_objects()
    assert pod_security_restricted(objects) == []
    assert pod_security_restricted(objects, require_apparmor=True) == []
    assert multi_tenancy(objects) == []


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
