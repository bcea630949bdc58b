"""One vLLM Deployment and Service per model served in a tenant's namespace.

The pod is hardened for Pod Security `restricted` and beyond: non-root with
a fixed uid, read-only root filesystem, no privilege escalation, every
capability dropped, seccomp and AppArmor `RuntimeDefault`, no host
namespaces, no hostPath, no service account token.  An imported model's
encrypted artifact is pulled and decrypted by an init container of the
Bulkhead image (`bulkhead model pull`), with a model developer key of the
tenant limited to that one model, from the Secret `pull_secret(model)` (made by
`bulkhead k8s pull-secret`), into a memory-backed emptyDir, so the plaintext
never touches a node's disk; vLLM mounts it read-only.  Placement follows the tier:
`mig` asks for one MIG instance of the platform's profile, `dedicated` for
whole GPUs on the tenant's own tainted nodes, each with its RuntimeClass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bulkhead.domain import Tier
from bulkhead.k8s.config import K8sConfig
from bulkhead.k8s.render.lora import (
    adapter_dir,
    adapter_mounts,
    adapter_volume,
    adapters_annotation,
    lora_args,
)
from bulkhead.k8s.render.names import (
    COMPONENT,
    MODEL,
    MODEL_SERVER,
    labels,
    meta,
    model_object,
    serve_namespace,
)
from bulkhead.k8s.render.network import MODEL_PORT
from bulkhead.k8s.render.tenancy import account_name
from bulkhead.k8s.render.views import ModelView, TenantView

UID = 10001
MODELS_DIR = "/models"
# The key in each model's pull Secret (`pull_secret`: a name, never a value).
ARTIFACT_SECRET_KEY = "api-key"  # noqa: S105
TMP = "/tmp"  # noqa: S108 (the pod's own memory-backed emptyDir)
GATEWAY_CA = "bh-gateway-ca"
CA_DIR = "/etc/bulkhead/gateway-ca"
CA_FILE = "ca.crt"
_RUNTIME_DEFAULT = {"type": "RuntimeDefault"}


def render_model(
    tenant: TenantView,
    model: ModelView,
    config: K8sConfig,
    adapters: Sequence[ModelView] = (),
) -> list[dict[str, Any]]:
    """The model's Deployment and Service; `adapters` are the tenant's fine-tuned adapters
    of this base, served by the same vLLM (`lora`)."""
    name = model_object(model.name)
    template_meta: dict[str, Any] = {"labels": dict(sorted(found_labels(tenant, name).items()))}
    if adapters:
        template_meta["annotations"] = adapters_annotation(adapters)
    namespace = serve_namespace(tenant.name)
    found = labels(tenant.name, MODEL_SERVER, **{MODEL: name})
    selector = {COMPONENT: MODEL_SERVER, MODEL: name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, namespace, found)
        | {"annotations": {"bulkhead.dev/model-name": model.name}},
        "spec": {
            # A suspended tenant keeps its objects and runs nothing.
            "replicas": 1 if tenant.status == "active" else 0,
            "selector": {"matchLabels": dict(sorted(selector.items()))},
            "template": {"metadata": template_meta, "spec": _pod(tenant, model, config, adapters)},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, namespace, found),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(sorted(selector.items())),
            "ports": [
                {"name": "http", "port": MODEL_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }
    return [deployment, service]


def found_labels(tenant: TenantView, name: str) -> dict[str, str]:
    return labels(tenant.name, MODEL_SERVER, **{MODEL: name})


def _pod(
    tenant: TenantView, model: ModelView, config: K8sConfig, adapters: Sequence[ModelView]
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "serviceAccountName": account_name(MODEL_SERVER),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": pod_security(),
        "containers": [_vllm(tenant, model, config, adapters)],
        "volumes": [
            memory_volume("models", config.model_files_mib),
            memory_volume("tmp", config.tmp_mib),
        ],
    }
    pulls = [_fetch(model.name, model.artifact, config)] if model.artifact is not None else []
    for adapter in adapters:
        into, volume = adapter_dir(adapter), adapter_volume(adapter)
        pulls.append(_fetch(adapter.name, str(adapter.artifact), config, into, volume))
        pod["volumes"].append(memory_volume(volume, config.adapter_files_mib))
    if pulls:
        pod["initContainers"] = pulls
        if config.gateway_ca_pem is not None:
            ca = {"name": GATEWAY_CA, "items": [{"key": CA_FILE, "path": CA_FILE}]}
            pod["volumes"].append({"name": "gateway-ca", "configMap": ca})
    runtime = config.runtime_class(tenant.tier)
    if runtime is not None:
        pod["runtimeClassName"] = runtime
    if tenant.tier is Tier.DEDICATED:
        pod |= dedicated_placement(tenant, config)
    return pod


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": dict(_RUNTIME_DEFAULT),
        "appArmorProfile": dict(_RUNTIME_DEFAULT),
    }


def memory_volume(name: str, mib: int) -> dict[str, Any]:
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": f"{mib}Mi"}}


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": dict(_RUNTIME_DEFAULT),
        "appArmorProfile": dict(_RUNTIME_DEFAULT),
    }


def _vllm(
    tenant: TenantView, model: ModelView, config: K8sConfig, adapters: Sequence[ModelView]
) -> dict[str, Any]:
    source = MODELS_DIR if model.artifact is not None else (model.upstream_model or model.name)
    # Memory-backed volumes are charged to the pod's memory: the limit holds them too.
    memory = config.model_memory_mib + config.model_files_mib + config.tmp_mib
    memory += config.adapter_files_mib * len(adapters)
    resources = {
        "cpu": f"{config.model_cpu_millicores}m",
        "memory": f"{memory}Mi",
        "ephemeral-storage": "1Gi",
    } | _accelerator(tenant, config)
    return {
        "name": "vllm",
        "image": config.need_image("vllm_image"),
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "--model",
            source,
            "--served-model-name",
            model.name,
            "--host",
            "0.0.0.0",
            "--port",
            str(MODEL_PORT),
            *lora_args(tenant, adapters),
        ],
        "env": [
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "HOME", "value": TMP},
        ],
        "ports": [{"name": "http", "containerPort": MODEL_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "models", "mountPath": MODELS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": TMP},
            *adapter_mounts(adapters),
        ],
    }


def _accelerator(tenant: TenantView, config: K8sConfig) -> dict[str, str]:
    if tenant.tier is Tier.MIG:
        return {f"nvidia.com/mig-{config.mig_profile}": "1"}
    if tenant.tier is Tier.DEDICATED:
        return {"nvidia.com/gpu": str(config.dedicated_gpus_per_model)}
    return {}


def pull_secret(model: str) -> str:
    """The Secret holding the key that pulls `model`'s weights: one per model, as its key is."""
    return "bh-pull-" + model_object(model).removeprefix("m-")


def _fetch(
    model: str,
    artifact: str,
    config: K8sConfig,
    into: str = MODELS_DIR,
    volume: str = "models",
) -> dict[str, Any]:
    """An init container pulling `model`'s `artifact` into `into` (the memory-backed
    `volume`) with the model's own pull key."""
    resources = {
        "cpu": "500m",
        "memory": f"{config.model_files_mib + 256}Mi",
        "ephemeral-storage": "256Mi",
    }
    reader = {"secretKeyRef": {"name": pull_secret(model), "key": ARTIFACT_SECRET_KEY}}
    fetch: dict[str, Any] = {
        "name": "fetch-model" if volume == "models" else "fetch-" + volume,
        "image": config.need_image("bulkhead_image"),
        "imagePullPolicy": "IfNotPresent",
        "command": ["bulkhead", "model", "pull", "--artifact", artifact, "--into", into],
        "env": [
            {"name": "BULKHEAD_URL", "value": config.gateway_url},
            {"name": "BULKHEAD_KEY", "valueFrom": reader},
            {"name": "HOME", "value": TMP},
        ],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": volume, "mountPath": into},
            {"name": "tmp", "mountPath": TMP},
        ],
    }
    if config.gateway_ca_pem is not None:  # trusted by this container alone, for the pull
        fetch["env"].append({"name": "SSL_CERT_FILE", "value": f"{CA_DIR}/{CA_FILE}"})
        fetch["volumeMounts"].append({"name": "gateway-ca", "mountPath": CA_DIR, "readOnly": True})
    return fetch


def render_gateway_ca(tenant: TenantView, config: K8sConfig) -> list[dict[str, Any]]:
    """The gateway's CA (public) in the serve namespace, where the init containers trust it."""
    if config.gateway_ca_pem is None:
        return []
    found = meta(GATEWAY_CA, serve_namespace(tenant.name), labels(tenant.name))
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": found,
             "data": {CA_FILE: config.gateway_ca_pem}}]  # fmt: skip


def dedicated_placement(tenant: TenantView, config: K8sConfig) -> dict[str, Any]:
    """Required node affinity to the tenant's pool, and toleration of its taint."""
    value = config.dedicated_label_value.replace("{tenant}", tenant.name)
    term = {"key": config.dedicated_label_key, "operator": "In", "values": [value]}
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [term]}]
                }
            }
        },
        "tolerations": [
            {
                "key": config.dedicated_taint_key,
                "operator": "Equal",
                "value": config.dedicated_taint_value.replace("{tenant}", tenant.name),
                "effect": config.dedicated_taint_effect,
            }
        ],
    }
