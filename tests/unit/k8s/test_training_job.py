"""A fine-tuning job rendered as a Job in `bh-<t>-train` (issue 17 item 5).

The Job passes `kubernetes-validate --strict` for two minor versions and the Pod Security
`restricted` checker; it fits the training namespace's quota or is refused; its pod, with
every tenant's rendered objects around it, reaches nothing at all (not DNS, not the
gateway, not the outside) and nothing reaches it.  The gateway's Role in each training
namespace is accepted by the multi-tenancy checks in exactly its rendered form, and any
widening of it, or a tenant role that makes pods, is a finding.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from bulkhead.domain import Tier
from bulkhead.errors import InvalidRequest
from bulkhead.finetune.contract import RunLimits
from bulkhead.k8s.checks import multi_tenancy, pod_security_restricted
from bulkhead.k8s.netpol import Pod
from bulkhead.k8s.proofs import Environment, isolation_findings, isolation_matrix
from bulkhead.k8s.render import TenantView, render_all, render_training_job
from bulkhead.k8s.render.training import (
    GATEWAY_TRAINING_ROLE,
    JOB_ID_ANNOTATION,
    JOB_LABEL,
    job_name,
)
from tests.unit.k8s.catalog import DEDICATED, MODELS, SHARED, TENANTS, config

VERSIONS = ("1.33.0", "1.35.0")
GiB = 1 << 30
MIG4 = TenantView("beta", "ten_beta", Tier.MIG, limits={"mig_instances": 4})
Obj = dict[str, Any]


def jobs() -> list[Obj]:
    small = RunLimits(memory_bytes=2 * GiB, wall_seconds=1800.5)
    return [
        render_training_job(SHARED, "ftjob-acme-1", small, config()),
        render_training_job(MIG4, "ftjob-beta-1", small, config(), accelerator=True),
        render_training_job(DEDICATED, "ftjob-gamma-1", small, config(), accelerator=True),
    ]


def everything() -> list[Obj]:
    tenants = (SHARED, MIG4, DEDICATED)
    return render_all(tenants, MODELS, config()) + jobs()


def container(job: Obj) -> Obj:
    spec = job["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return spec["containers"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", VERSIONS)
def test_each_job_is_valid_strictly(version: str) -> None:
    for job in jobs():
        kubernetes_validate.validate(job, version, strict=True)


def test_the_job_carries_the_runners_restrictions() -> None:
    job = jobs()[0]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert job["metadata"]["namespace"] == "bh-acme-train"
    assert job["metadata"]["name"] == job_name("ftjob-acme-1")
    assert job["metadata"]["annotations"] == {JOB_ID_ANNOTATION: "ftjob-acme-1"}
    labels = job["metadata"]["labels"]
    assert labels["bulkhead.dev/tenant"] == "acme"
    assert labels["bulkhead.dev/component"] == "training"
    assert labels[JOB_LABEL] == job_name("ftjob-acme-1")
    # Not `managed-by: bulkhead`: prune never takes a running job.
    assert labels["app.kubernetes.io/managed-by"] == "bulkhead-finetune"
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 1801
    assert spec["ttlSecondsAfterFinished"] == 300
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "bh-training"
    assert pod["terminationGracePeriodSeconds"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    box = container(job)
    assert box["image"].split("@sha256:")[1]
    assert box["command"][-2:] == ["-m", "bulkhead.finetune.stream"]
    assert box["stdin"] is True and box["stdinOnce"] is True and box["tty"] is False
    security = box["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    resources = box["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"]["cpu"] == "1000m"
    assert resources["limits"]["memory"] == f"{2048 + config().tmp_mib}Mi"
    assert "nvidia.com/gpu" not in resources["limits"]
    assert pod["volumes"] == [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": f"{config().tmp_mib}Mi"}}
    ]


def test_a_gpu_only_where_the_tenant_has_one_for_training() -> None:
    _, mig, dedicated = jobs()
    assert container(mig)["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert container(dedicated)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert dedicated["spec"]["template"]["spec"]["runtimeClassName"] == "gvisor"
    assert "tolerations" in dedicated["spec"]["template"]["spec"]
    with pytest.raises(InvalidRequest, match="no GPU"):
        render_training_job(SHARED, "j", RunLimits(memory_bytes=GiB), config(), accelerator=True)
    # beta with 2 MIG instances: 25 % of them rounds down to none for training.
    two = TenantView("beta", "ten_beta", Tier.MIG, limits={"mig_instances": 2})
    with pytest.raises(InvalidRequest, match="no GPU"):
        render_training_job(two, "j", RunLimits(memory_bytes=GiB), config(), accelerator=True)


@pytest.mark.parametrize(
    ("limits", "what"),
    [
        (RunLimits(memory_bytes=64 * GiB), "memory_mib"),
        (RunLimits(memory_bytes=GiB, threads=2), "cpu_millicores"),
    ],
)
def test_a_job_over_the_training_quota_is_refused(limits: RunLimits, what: str) -> None:
    with pytest.raises(InvalidRequest, match=what):
        render_training_job(SHARED, "j", limits, config())


def test_the_jobs_pass_the_pod_security_and_tenancy_checks() -> None:
    objects = everything()
    assert pod_security_restricted(objects, require_apparmor=True) == []
    assert multi_tenancy(objects) == []


def test_a_job_pod_reaches_nothing_and_nothing_reaches_it() -> None:
    objects = everything()
    env = Environment()
    assert isolation_findings(objects, env) == []
    matrix, pods = isolation_matrix(objects, env)
    job_pods = [p for p in pods if p.namespace.endswith("-train") and "stand-in" not in p.name]
    assert len(job_pods) == 3
    for pod in job_pods:
        assert matrix.destinations_of(pod) == set()
        assert matrix.sources_of(pod) == set()
    assert matrix.destinations_of(Pod("bh-acme-train", "stand-in-training")) == set()


def _gateway_role(objects: list[Obj], namespace: str = "bh-acme-train") -> Obj:
    return next(
        o
        for o in objects
        if o["kind"] == "Role"
        and o["metadata"]["name"] == GATEWAY_TRAINING_ROLE
        and o["metadata"]["namespace"] == namespace
    )


def test_the_gateway_may_run_jobs_and_attach_in_each_training_namespace_only() -> None:
    objects = render_all(TENANTS, MODELS, config())
    roles = [o for o in objects if o["metadata"]["name"] == GATEWAY_TRAINING_ROLE]
    assert {(o["kind"], o["metadata"]["namespace"]) for o in roles} == {
        (kind, f"bh-{t.name}-train") for kind in ("Role", "RoleBinding") for t in TENANTS
    }
    rules = _gateway_role(objects)["rules"]
    assert rules == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete", "get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/attach"], "verbs": ["create", "get"]},
    ]
    binding = next(o for o in roles if o["kind"] == "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bulkhead-gateway", "namespace": "bulkhead"}
    ]


def _widen(objects: list[Obj]) -> None:
    _gateway_role(objects)["rules"][1]["verbs"].append("create")  # pods create


def _exec(objects: list[Obj]) -> None:
    _gateway_role(objects)["rules"].append(
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}
    )


def _secrets(objects: list[Obj]) -> None:
    _gateway_role(objects)["rules"].append(
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    )


def _tenant_bound(objects: list[Obj]) -> None:
    binding = next(
        o
        for o in objects
        if o["kind"] == "RoleBinding" and o["metadata"]["name"] == GATEWAY_TRAINING_ROLE
    )
    binding["subjects"].append({"kind": "Group", "name": "bulkhead:tenant:acme:admins"})


def _in_serve(objects: list[Obj]) -> None:
    role = copy.deepcopy(_gateway_role(objects))
    role["metadata"]["namespace"] = "bh-acme-serve"
    objects.append(role)


def _admin_makes_pods(objects: list[Obj]) -> None:
    admin = next(
        o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "bh-tenant-admin"
    )
    admin["rules"].append({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]})


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_widen, "rules differ from the gateway's training access"),
        (_exec, "rules differ from the gateway's training access"),
        (_secrets, "rules differ from the gateway's training access"),
        (_tenant_bound, "binds the gateway's training role to another subject"),
        (_in_serve, "outside a training namespace"),
        (_admin_makes_pods, "jobs: ['create'] makes pods"),
    ],
    ids=["pods-create", "exec", "secrets", "tenant-bound", "in-serve", "tenant-makes-pods"],
)
def test_the_checks_accept_exactly_the_gateways_training_role(mutate: Any, expected: str) -> None:
    objects = render_all(TENANTS, MODELS, config())
    assert multi_tenancy(objects) == []
    mutate(objects)
    findings = multi_tenancy(objects)
    assert any(expected in f for f in findings), findings
