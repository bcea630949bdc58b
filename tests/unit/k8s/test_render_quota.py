"""Quotas and limit ranges from the tenant's compute limits, the floor rules, the MIG layout."""

from __future__ import annotations

from typing import Any

import pytest

from bulkhead.admin.quotas import raises_above_tier
from bulkhead.domain import Tenant, TenantStatus, Tier
from bulkhead.errors import InvalidRequest
from bulkhead.k8s.render import (
    TenantView,
    render_all,
    render_tenant,
)
from bulkhead.limits.policy import COMPUTE_QUOTAS, QUOTAS, TIER_DEFAULTS, check_quotas, effective
from tests.unit.k8s.catalog import (
    DEDICATED,
    MIG,
    MODELS,
    SHARED,
    TENANTS,
    config,
    of,
    one,
    pods,
)

# Quotas and limit ranges ----------------------------------------------------------------


def hard_of(tenant: TenantView, role: str, **cfg: Any) -> dict[str, str]:
    objects = render_tenant(tenant, MODELS, config(**cfg))
    found = one(objects, "ResourceQuota", f"bh-{tenant.name}-{role}", "bh-quota")
    hard: dict[str, str] = found["spec"]["hard"]
    return hard


def quota(tenant: TenantView, **cfg: Any) -> dict[str, str]:
    """The serve namespace's quota with the whole of each limit (the train share at 0)."""
    hard = hard_of(tenant, "serve", train_share_percent=0, **cfg)
    train = hard_of(tenant, "train", train_share_percent=0, **cfg)
    assert {v.rstrip("mMi") for v in train.values()} == {"0"}
    return hard


def _amount(text: str) -> int:
    return int(text.removesuffix("Mi").removesuffix("m"))


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.tier.value)
def test_the_two_namespaces_quotas_add_up_to_the_tenants_limits(tenant: TenantView) -> None:
    whole, serve, train = quota(tenant), hard_of(tenant, "serve"), hard_of(tenant, "train")
    assert serve.keys() == train.keys() == whole.keys()
    for name, value in whole.items():
        assert _amount(serve[name]) + _amount(train[name]) == _amount(value), name
        assert _amount(train[name]) == _amount(value) * 25 // 100, name  # the default share


def test_quota_names_every_exhaustible_resource() -> None:
    hard = quota(SHARED)
    for name in (
        "requests.cpu", "limits.cpu", "requests.memory", "limits.memory",
        "requests.ephemeral-storage", "limits.ephemeral-storage", "pods", "services",
        "secrets", "persistentvolumeclaims", "requests.storage", "requests.nvidia.com/gpu",
    ):  # fmt: skip
        assert name in hard
    assert hard["services.loadbalancers"] == "0" and hard["services.nodeports"] == "0"
    assert hard["requests.cpu"] == f"{TIER_DEFAULTS[Tier.SHARED]['cpu_millicores']}m"
    assert hard["requests.memory"] == f"{TIER_DEFAULTS[Tier.SHARED]['memory_mib']}Mi"


def test_gpus_by_tier() -> None:
    shared, mig, dedicated = quota(SHARED), quota(MIG), quota(DEDICATED)
    mig_names = {n for n in shared if n.startswith("requests.nvidia.com/mig-")}
    assert "requests.nvidia.com/mig-1g.10gb" in mig_names
    assert not any("+" in n for n in mig_names)
    assert shared["requests.nvidia.com/gpu"] == "0"
    assert {shared[n] for n in mig_names} == {"0"}
    assert mig["requests.nvidia.com/gpu"] == "0"
    assert mig["requests.nvidia.com/mig-1g.10gb"] == "2"
    assert {mig[n] for n in mig_names - {"requests.nvidia.com/mig-1g.10gb"}} == {"0"}
    assert dedicated["requests.nvidia.com/gpu"] == "4"
    assert {dedicated[n] for n in mig_names} == {"0"}


def test_the_mig_profile_comes_from_the_config() -> None:
    hard = quota(MIG, mig_profile="2g.20gb")
    assert hard["requests.nvidia.com/mig-2g.20gb"] == "2"
    assert hard["requests.nvidia.com/mig-1g.10gb"] == "0"


def test_quota_follows_the_tenants_own_limits() -> None:
    tenant = TenantView("acme", "t", Tier.SHARED, limits={"cpu_millicores": 1500, "pods": 3})
    hard = quota(tenant)
    assert hard["limits.cpu"] == "1500m" and hard["pods"] == "3"


def test_limit_range_defaults_never_exceed_the_quota() -> None:
    tenant = TenantView("acme", "t", Tier.SHARED, limits={"cpu_millicores": 100, "memory_mib": 64})
    objects = render_tenant(tenant, (), config(train_share_percent=0))
    limits = one(objects, "LimitRange", "bh-acme-serve", "bh-limits")["spec"]["limits"]
    container = next(item for item in limits if item["type"] == "Container")
    assert container["max"] == {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "10240Mi"}
    assert container["default"]["cpu"] == "100m" and container["defaultRequest"]["cpu"] == "100m"
    assert container["default"]["memory"] == "64Mi"
    pvc = next(item for item in limits if item["type"] == "PersistentVolumeClaim")
    assert pvc["max"]["storage"] == "51200Mi"


def test_an_unbounded_compute_limit_cannot_be_rendered() -> None:
    tenant = TenantView("acme", "t", Tier.SHARED, limits={"pods": None})
    with pytest.raises(InvalidRequest, match="no bound on pods"):
        render_tenant(tenant, (), config())


# The floor: compute limits are tenant limits, raised above the tier only with a grant ---------


def test_compute_names_are_limits_with_per_tier_defaults() -> None:
    for name in COMPUTE_QUOTAS:
        assert name in QUOTAS and QUOTAS[name] is None  # not a rate
        for tier in Tier:
            assert isinstance(TIER_DEFAULTS[tier][name], int)
    assert [TIER_DEFAULTS[t]["gpus"] for t in Tier] == [0, 0, 1]
    assert [TIER_DEFAULTS[t]["mig_instances"] for t in Tier] == [0, 1, 0]
    assert effective(Tier.MIG, {})["mig_instances"] == 1


def test_compute_limits_are_never_unlimited_but_may_be_zero() -> None:
    assert check_quotas({"gpus": 0, "pods": 5}) == {"gpus": 0, "pods": 5}
    with pytest.raises(ValueError, match=r"gpus must be a whole number >= 0$"):
        check_quotas({"gpus": None})
    with pytest.raises(ValueError, match="pods must be"):
        check_quotas({"pods": -1})
    with pytest.raises(ValueError, match="unknown limit 'gpus'"):
        check_quotas({"gpus": 1}, key=True)  # a key never carries compute


def test_raising_compute_above_the_tier_needs_the_grant() -> None:
    shared = Tenant(id="t", name="acme", tier=Tier.SHARED, status=TenantStatus.ACTIVE)
    assert raises_above_tier(shared, {"gpus": 1, "pods": 5}) == ["gpus"]
    assert raises_above_tier(shared, {"mig_instances": 0, "cpu_millicores": 100}) == []
    dedicated = Tenant(
        id="t", name="g", tier=Tier.DEDICATED, status=TenantStatus.ACTIVE, quotas={"gpus": 8}
    )
    assert raises_above_tier(dedicated, {"gpus": 6}) == []  # lowering a granted value
    assert raises_above_tier(dedicated, {"gpus": 9}) == ["gpus"]


# The platform's MIG layout ---------------------------------------------------------------


def test_the_mig_parted_config_map_holds_every_mig_tenants_instances() -> None:
    other = TenantView("delta", "t4", Tier.MIG, limits={"mig_instances": 6})
    objects = render_all((*TENANTS, other), MODELS, config())
    (cm,) = of(objects, "ConfigMap")
    assert cm["metadata"]["namespace"] == "bulkhead"
    assert (
        cm["metadata"]["annotations"]["bulkhead.dev/node-labels"]
        == "nvidia.com/mig.config=bulkhead"
    )
    assert cm["metadata"]["annotations"]["bulkhead.dev/gpus"] == "2"  # 8 x 1g.10gb: 7 per GPU
    assert '"1g.10gb"' in cm["data"]["config.yaml"]
    assert not of(render_all((SHARED, DEDICATED), MODELS, config()), "ConfigMap")


def test_too_many_mig_instances_are_refused() -> None:
    huge = TenantView("delta", "t4", Tier.MIG, limits={"mig_instances": 200})
    with pytest.raises(InvalidRequest, match="do not fit on 16 GPUs"):
        render_all((huge,), (), config())


def test_a_suspended_tenant_runs_no_model_server_and_no_mig_instance() -> None:
    suspended = TenantView("beta", "t", Tier.MIG, status="suspended", limits={"mig_instances": 2})
    objects = render_all((suspended,), MODELS, config())
    assert [d["spec"]["replicas"] for d in of(objects, "Deployment")] == [0]
    assert not of(objects, "ConfigMap")
    assert of(render_all((MIG,), MODELS, config()), "Deployment")[0]["spec"]["replicas"] == 1


def _mib(quantity: str) -> int:
    units = {"Mi": 1, "Gi": 1024}
    return int(quantity[:-2]) * units[quantity[-2:]]


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.tier.value)
def test_a_model_server_fits_its_tiers_default_quota_and_limit_range(tenant: TenantView) -> None:
    plain = TenantView(tenant.name, tenant.id, tenant.tier)
    objects = render_tenant(plain, MODELS, config())
    hard = quota(plain)
    container_max = next(
        item
        for item in one(objects, "LimitRange", f"bh-{plain.name}-serve", "bh-limits")["spec"][
            "limits"
        ]
        if item["type"] == "Container"
    )["max"]
    for pod in pods(objects):
        for c in pod["containers"] + pod.get("initContainers", []):
            limits = c["resources"]["limits"]
            assert int(limits["cpu"][:-1]) <= int(container_max["cpu"][:-1])
            assert _mib(limits["memory"]) <= _mib(container_max["memory"])
            assert _mib(limits["ephemeral-storage"]) <= _mib(container_max["ephemeral-storage"])
            for name, value in limits.items():
                if name.startswith("nvidia.com/"):
                    assert int(value) <= int(hard[f"requests.{name}"]), name
        memory = sum(_mib(c["resources"]["limits"]["memory"]) for c in pod["containers"])
        assert memory <= _mib(hard["limits.memory"])
