"""Every rendered object passes `kubernetes-validate --strict` for two Kubernetes minor versions.

Strict mode refuses any field the API's OpenAPI schema does not define, so a
misspelt or misplaced field (a securityContext key at the wrong level, an
ipBlock outside its peer) fails here, not on a cluster.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from bulkhead.domain import Tier
from bulkhead.k8s.render import TenantView, render_all
from tests.unit.k8s.catalog import MODELS, TENANTS, config

VERSIONS = ("1.33.0", "1.35.0")


def catalog() -> list[dict[str, Any]]:
    more = TenantView("delta", "t4", Tier.MIG, limits={"mig_instances": 9})
    cfg = config(egress_cidrs=["0.0.0.0/0", "::/0"], runtime_classes={"dedicated": "kata"})
    return render_all((*TENANTS, more), MODELS, cfg)


def test_the_catalog_renders_every_kind() -> None:
    kinds = {o["kind"] for o in catalog()}
    assert kinds == {
        "Namespace", "ServiceAccount", "ResourceQuota", "LimitRange", "Role", "RoleBinding",
        "NetworkPolicy", "ConfigMap", "Service", "Deployment",
    }  # fmt: skip
    assert {t.tier for t in TENANTS} == set(Tier)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_strictly(version: str) -> None:
    failures = []
    for item in catalog():
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{item['kind']} {item['metadata']['name']}: {exc.message}")
    assert failures == []


@pytest.mark.parametrize("version", VERSIONS)
def test_the_validator_catches_a_misplaced_field(version: str) -> None:
    """The check has teeth: a field the schema lacks is refused."""
    deployment = next(o for o in catalog() if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsRoot"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)
