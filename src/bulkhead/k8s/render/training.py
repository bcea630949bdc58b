"""A fine-tuning job as a batch/v1 Job in the tenant's training namespace, and the gateway's
least-privilege access to run it there.

The pod gets the local runner's restrictions (`bulkhead.finetune.runner`): non-root with a
fixed uid, read-only root, no privilege escalation, every capability dropped, seccomp and
AppArmor `RuntimeDefault`, no service account token, no host namespaces; cpu and memory
requests equal to limits, from the job's `RunLimits`, checked against the training
namespace's share of the tenant's quota; a GPU only where the tenant has one there;
`activeDeadlineSeconds` is the job's wall-clock limit, `backoffLimit` 0 (a failed job is
not run again with the same data), `ttlSecondsAfterFinished` clears it away.  `/tmp` is a
memory-backed emptyDir, so nothing is written to a node's disk.

Nothing reaches the pod over the network, and it reaches nothing (its NetworkPolicy denies
all egress, DNS included): the gateway attaches to the container's stdin and stdout through
the API server (`pods/attach`; `stdin` + `stdinOnce`, no tty) and speaks the child's
protocol (`bulkhead.finetune.child`) over it, behind a sealed stdout
(`bulkhead.finetune.stream`) because the container runtime copies stdout into the node's
log files.  It copies stderr there too, so the child silences its stderr before it reads
an example (`child.silence_stderr`).  The gateway's ServiceAccount gets exactly what that
needs in each training namespace (`GATEWAY_TRAINING_RULES`): create, get and delete Jobs,
read pods, attach to them.
"""

from __future__ import annotations

import copy
import hashlib
import math
from typing import Any, Final

from bulkhead.domain import Tier
from bulkhead.errors import InvalidRequest
from bulkhead.finetune.contract import RunLimits
from bulkhead.k8s.config import K8sConfig
from bulkhead.k8s.render.names import MANAGED_BY, TRAINING, labels, meta, train_namespace
from bulkhead.k8s.render.tenancy import account_name, namespace_share
from bulkhead.k8s.render.views import TenantView
from bulkhead.k8s.render.workloads import (
    TMP,
    container_security,
    dedicated_placement,
    memory_volume,
    pod_security,
)

JOB_LABEL: Final = "bulkhead.dev/fine-tuning-job"
JOB_ID_ANNOTATION: Final = "bulkhead.dev/fine-tuning-job-id"
CONTAINER: Final = "train"
# The image's virtual environment (deploy/image/Containerfile) and the sealed child.
PYTHON: Final = "/opt/bulkhead/bin/python"
COMMAND: Final = (PYTHON, "-I", "-B", "-m", "bulkhead.finetune.stream")
# The Job carries its own manager label: prune (which deletes what `managed-by: bulkhead`
# marks and the renderer no longer renders) must never take a running job.
JOB_MANAGER: Final = {next(iter(MANAGED_BY)): "bulkhead-finetune"}
GATEWAY_TRAINING_ROLE: Final = "bh-gateway-training"
# Exactly what the gateway needs in a training namespace (checks.py accepts this and no more).
GATEWAY_TRAINING_RULES: Final = (
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete", "get"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/attach"], "verbs": ["create", "get"]},
)
EPHEMERAL_MIB: Final = 256  # the container's logs (sealed) and its writable layer


def job_name(job_id: str) -> str:
    """`bh-ft-<40 hex of the job id's hash>`: a DNS label, distinct per job."""
    return "bh-ft-" + hashlib.sha256(job_id.encode()).hexdigest()[:40]


def render_training_job(
    tenant: TenantView,
    job_id: str,
    limits: RunLimits,
    config: K8sConfig,
    *,
    accelerator: bool = False,
) -> dict[str, Any]:
    """The Job of one fine-tuning job; `InvalidRequest` when it does not fit the training
    namespace's quota (or asks for a GPU the tenant has none of there)."""
    name = job_name(job_id)
    pod_labels = labels(tenant.name, TRAINING, **{JOB_LABEL: name}) | JOB_MANAGER
    found = meta(name, train_namespace(tenant.name), pod_labels)
    found["annotations"] = {JOB_ID_ANNOTATION: job_id}
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # Deleting the Job (a cancel) ends the child within 2 s: it needs no shutdown.
        "terminationGracePeriodSeconds": 2,
        "serviceAccountName": account_name(TRAINING),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": pod_security(),
        "containers": [_container(tenant, limits, config, accelerator)],
        "volumes": [memory_volume("tmp", config.tmp_mib)],
    }
    runtime = config.runtime_class(tenant.tier)
    if runtime is not None:
        pod["runtimeClassName"] = runtime
    if tenant.tier is Tier.DEDICATED:
        pod |= dedicated_placement(tenant, config)
    spec = {
        "backoffLimit": 0,
        "activeDeadlineSeconds": max(1, math.ceil(limits.wall_seconds)),
        "ttlSecondsAfterFinished": config.training_ttl_s,
        "template": {"metadata": {"labels": dict(sorted(pod_labels.items()))}, "spec": pod},
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": found, "spec": spec}


def _container(
    tenant: TenantView, limits: RunLimits, config: K8sConfig, accelerator: bool
) -> dict[str, Any]:
    share = namespace_share(tenant, "train", config)
    cpu = max(1, limits.threads) * 1000
    # The memory-backed /tmp is charged to the pod's memory: the limit holds it too.
    memory = -(-limits.memory_bytes // (1 << 20)) + config.tmp_mib
    for what, need, have in (
        ("cpu_millicores", cpu, share("cpu_millicores")),
        ("memory_mib", memory, share("memory_mib")),
        ("ephemeral_storage_mib", EPHEMERAL_MIB, share("ephemeral_storage_mib")),
    ):
        if need > have:
            raise InvalidRequest(
                f"The job needs {need} of {what} and tenant '{tenant.name}' has {have} for "
                "training on Kubernetes.",
                param=what,
            )
    resources = {
        "cpu": f"{cpu}m",
        "memory": f"{memory}Mi",
        "ephemeral-storage": f"{EPHEMERAL_MIB}Mi",
    } | (_accelerator(tenant, config) if accelerator else {})
    return {
        "name": CONTAINER,
        "image": config.need_image("bulkhead_image"),
        "imagePullPolicy": "IfNotPresent",
        "command": list(COMMAND),
        # The gateway attaches to stdin once; the runtime closes it when it detaches.
        "stdin": True,
        "stdinOnce": True,
        "tty": False,
        "env": [
            {"name": "HOME", "value": TMP},
            {"name": "TMPDIR", "value": TMP},
            {"name": "OMP_NUM_THREADS", "value": str(max(1, limits.threads))},
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
        ],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": TMP}],
    }


def _accelerator(tenant: TenantView, config: K8sConfig) -> dict[str, str]:
    share = namespace_share(tenant, "train", config)
    if tenant.tier is Tier.MIG and share("mig_instances") >= 1:
        return {f"nvidia.com/mig-{config.mig_profile}": "1"}
    if tenant.tier is not Tier.MIG and share("gpus") >= 1:
        return {"nvidia.com/gpu": "1"}
    raise InvalidRequest(
        f"Tenant '{tenant.name}' has no GPU for training on Kubernetes.", param="gpus"
    )


def render_gateway_training_access(tenant: TenantView, config: K8sConfig) -> list[dict[str, Any]]:
    """The Role and RoleBinding that let the gateway run jobs in the training namespace."""
    namespace = train_namespace(tenant.name)
    api = "rbac.authorization.k8s.io/v1"
    found = labels(tenant.name)
    role = {
        "apiVersion": api,
        "kind": "Role",
        "metadata": meta(GATEWAY_TRAINING_ROLE, namespace, found),
        "rules": copy.deepcopy(list(GATEWAY_TRAINING_RULES)),
    }
    subject = {
        "kind": "ServiceAccount",
        "name": config.gateway_service_account,
        "namespace": config.platform_namespace,
    }
    binding = {
        "apiVersion": api,
        "kind": "RoleBinding",
        "metadata": meta(GATEWAY_TRAINING_ROLE, namespace, found),
        "subjects": [subject],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": GATEWAY_TRAINING_ROLE},
    }  # fmt: skip
    return [role, binding]


__all__ = [
    "COMMAND",
    "CONTAINER",
    "GATEWAY_TRAINING_ROLE",
    "GATEWAY_TRAINING_RULES",
    "JOB_ID_ANNOTATION",
    "JOB_LABEL",
    "job_name",
    "render_gateway_training_access",
    "render_training_job",
]
