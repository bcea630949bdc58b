"""A catalog with one tenant of each tier, and a cluster config, for the renderer's tests."""

from __future__ import annotations

from typing import Any

from bulkhead.domain import Tier
from bulkhead.k8s.config import K8sConfig, from_mapping
from bulkhead.k8s.render import ModelView, TenantView

VLLM = "registry.example/vllm/vllm-openai@sha256:" + "a" * 64
BULKHEAD = "registry.example/bulkhead/bulkhead@sha256:" + "b" * 64


def config(**more: Any) -> K8sConfig:
    values: dict[str, Any] = {
        "vllm_image": VLLM,
        "bulkhead_image": BULKHEAD,
        "runtime_classes": {"dedicated": "gvisor"},
    }
    return from_mapping(values | more)


SHARED = TenantView("acme", "ten_acme", Tier.SHARED)
MIG = TenantView("beta", "ten_beta", Tier.MIG, limits={"mig_instances": 2})
DEDICATED = TenantView("gamma", "ten_gamma", Tier.DEDICATED, limits={"gpus": 4})
TENANTS = (SHARED, MIG, DEDICATED)

MODELS = (
    ModelView("acme/Llama-3-8B", owner="acme", artifact="art_acme1", worker="hf-causal"),
    ModelView("acme-remote", owner="acme", kind="upstream", upstream_model="gpt-x"),
    ModelView("beta-chat", owner="beta", upstream_model="beta/chat-7b"),
    ModelView("gamma-own", owner="gamma", artifact="art_gamma1", worker="hf-causal"),
    ModelView("shared-llm", granted_to=("acme", "beta", "gamma"), upstream_model="org/llm"),
    ModelView("shared-remote", kind="upstream", granted_to=("gamma",)),
)


def of(objects: list[dict[str, Any]], kind: str, namespace: str | None = None) -> list[Any]:
    return [
        o
        for o in objects
        if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]


def one(objects: list[dict[str, Any]], kind: str, namespace: str, name: str) -> Any:
    found = [o for o in of(objects, kind, namespace) if o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, namespace, name)
    return found[0]


def pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in of(objects, "Deployment")]
