"""Which workers the catalog asks for: a tenant's tier travels with its private models."""

from __future__ import annotations

from types import MappingProxyType

from bulkhead.app import local_specs
from bulkhead.domain import (
    Deployment,
    DeploymentKind,
    Endpoint,
    Model,
    ResolvedModel,
    Tenant,
    TenantStatus,
    Tier,
)
from bulkhead.store import Snapshot


def snapshot(tier: Tier) -> Snapshot:
    tenant = Tenant("t1", "acme", tier, TenantStatus.ACTIVE)
    private = ResolvedModel(
        Model("m1", "mine", "t1", frozenset({Endpoint.CHAT})),
        Deployment("d1", "m1", DeploymentKind.LOCAL, worker="demo-chat"),
    )
    shared = ResolvedModel(
        Model("m2", "base", None, frozenset({Endpoint.CHAT})),
        Deployment("d2", "m2", DeploymentKind.LOCAL, worker="demo-chat"),
    )
    return Snapshot(
        version=1, tenants=MappingProxyType({"t1": tenant}), deployments=(private, shared)
    )


def test_a_tier_change_changes_the_private_workers_only() -> None:
    before = {s.key: s for s in local_specs(snapshot(Tier.SHARED))}
    after = {s.key: s for s in local_specs(snapshot(Tier.MIG))}
    assert before["d1"].tier is Tier.SHARED and after["d1"].tier is Tier.MIG
    # A changed spec is a restart of that worker (WorkerSupervisor.sync), on the new tier's
    # sandbox and devices; the tenant's calls get 503 meanwhile, never another's worker.
    assert before["d1"] != after["d1"]
    assert before["d2"] == after["d2"]  # shared models run on the shared tier regardless
    assert after["d2"].tier is Tier.SHARED and after["d2"].tenant is None


def test_workers_are_pinned_to_their_tiers_devices() -> None:
    from bulkhead.runtime.gpu import Device

    gpus = (Device("GPU-aaaaaaaa-0000", False), Device("MIG-bbbbbbbb-1111", True))
    specs = {s.key: s for s in local_specs(snapshot(Tier.MIG), gpus=gpus)}
    assert specs["d1"].device_env == {"CUDA_VISIBLE_DEVICES": "MIG-bbbbbbbb-1111"}
    shared = specs["d2"].device_env
    assert shared["CUDA_VISIBLE_DEVICES"] == "GPU-aaaaaaaa-0000"
    assert float(shared["BULKHEAD_GPU_MEMORY_FRACTION"]) == 1.0
    # Without GPUs nothing is pinned, and the supervisor hides every GPU from the worker.
    assert all(not s.device_env for s in local_specs(snapshot(Tier.MIG)))


class Artifacts:
    """Stands in for `ArtifactService.load`: each artifact's files, per owner."""

    def __init__(self) -> None:
        self.files = {
            ("t1", "art-adapter"): [("adapter_config.json", b"{}")],
            ("t1", "art-base"): [("config.json", b"{}"), ("model.safetensors", b"w")],
        }

    def load(self, tenant_id: str, artifact_id: str) -> list[tuple[str, bytes]]:
        return self.files[(tenant_id, artifact_id)]


def test_a_fine_tuned_model_gets_its_adapter_and_base_over_stdin() -> None:
    from typing import Any, cast

    def tuned(deployment: str, base: str) -> ResolvedModel:
        options = {"artifact": "art-adapter", "base": base}
        return ResolvedModel(
            Model("m-" + deployment, "ft:x", "t1", frozenset({Endpoint.CHAT})),
            Deployment(
                deployment, "m-" + deployment, DeploymentKind.LOCAL,
                worker="hf-causal-lora", options=options,
            ),
        )  # fmt: skip

    tenant = Tenant("t1", "acme", Tier.SHARED, TenantStatus.ACTIVE)
    models = (tuned("d1", "smollm2-135m"), tuned("d2", "artifact:art-base"))
    snap = Snapshot(
        version=1,
        tenants=MappingProxyType({"t1": tenant}),
        # Both visible to their owner, as the catalog lists them while their bases are.
        visible=MappingProxyType(
            {"t1": MappingProxyType({f"ft:{i}": m for i, m in enumerate(models)})}
        ),
        deployments=models,
    )
    specs = {s.key: s for s in local_specs(snap, cast(Any, Artifacts()))}
    assert specs["d1"].kind == "hf-causal-lora" and specs["d1"].load_weights is not None
    assert list(specs["d1"].load_weights()) == [
        ("adapter_config.json", b"{}"),
        ("base.bundled", b"smollm2-135m"),
    ]
    assert specs["d2"].load_weights is not None
    assert list(specs["d2"].load_weights()) == [
        ("adapter_config.json", b"{}"),
        ("base/config.json", b"{}"),
        ("base/model.safetensors", b"w"),
    ]


def test_a_tuned_model_whose_base_is_hidden_gets_no_worker() -> None:
    """Revoking the base's grant hides the tenant's `ft:` model (the catalog); its worker
    stops too instead of holding memory for a model nobody may call."""
    from bulkhead.store.artifacts import BASE_OPTION, LORA_WORKER

    tenant = Tenant("t1", "acme", Tier.SHARED, TenantStatus.ACTIVE)
    base = ResolvedModel(
        Model("m2", "base", None, frozenset({Endpoint.CHAT})),
        Deployment("d2", "m2", DeploymentKind.LOCAL, worker="demo-chat"),
    )
    tuned = ResolvedModel(
        Model("m3", "ft:base:acme:x", "t1", frozenset({Endpoint.CHAT})),
        Deployment(
            "d3", "m3", DeploymentKind.LOCAL, worker=LORA_WORKER, options={BASE_OPTION: "demo-chat"}
        ),
    )

    def snap(visible: dict[str, ResolvedModel]) -> Snapshot:
        return Snapshot(
            version=1,
            tenants=MappingProxyType({"t1": tenant}),
            visible=MappingProxyType({"t1": MappingProxyType(visible)}),
            deployments=(base, tuned),
        )

    granted = snap({"base": base, tuned.model.name: tuned})
    assert {s.key for s in local_specs(granted)} == {"d2", "d3"}
    revoked = snap({})  # the catalog dropped both: the grant is gone
    assert {s.key for s in local_specs(revoked)} == {"d2"}
