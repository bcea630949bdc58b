"""The proofs of issue 16 item 3, held over what the renderer really makes.

`render_all` over a catalog with one tenant of each tier (and with an egress
range opened) must pass the isolation proof (reachability by the NetworkPolicy
evaluator: no edge between tenants, none into training, model servers reached
from the gateway alone, no metadata address), the Pod Security `restricted`
checker (AppArmor required), and the multi-tenancy checks.  The reachability
matrix is a golden file, so any new edge shows up in review.  Each proof is
also shown to bite on the rendered set: a mutation that opens a hole is found.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from bulkhead.k8s.checks import multi_tenancy, pod_security_restricted
from bulkhead.k8s.netpol import Probe
from bulkhead.k8s.proofs import Environment, isolation_findings, isolation_matrix
from bulkhead.k8s.render import render_all
from tests.unit.k8s.catalog import MODELS, TENANTS, config

GOLDEN = Path(__file__).parent / "golden" / "reachability.txt"
Obj = dict[str, Any]


def rendered(**more: Any) -> list[Obj]:
    return render_all(TENANTS, MODELS, config(**more))


def environment() -> Environment:
    return Environment(probes=(Probe(config().vector_store_port),))


@pytest.mark.parametrize("egress", [[], ["0.0.0.0/0", "::/0"]], ids=["closed", "open-egress"])
def test_the_rendered_set_passes_every_proof(egress: list[str]) -> None:
    objects = rendered(egress_cidrs=egress)
    assert isolation_findings(objects, environment()) == []
    assert pod_security_restricted(objects, require_apparmor=True) == []
    assert multi_tenancy(objects) == []


def test_the_reachability_matrix_is_the_reviewed_one() -> None:
    matrix, _ = isolation_matrix(rendered(), environment())
    text = matrix.render() + "\n"
    if os.environ.get("BULKHEAD_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def _policies(objects: list[Obj], namespace: str) -> list[Obj]:
    return [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == namespace
    ]


def test_policies_letting_another_tenant_in_are_found() -> None:
    objects = rendered()
    for policy in _policies(objects, "bh-acme-serve"):
        for rule in policy["spec"].get("ingress", []):
            rule.setdefault("from", []).append({"namespaceSelector": {}})
    # Acme's ingress alone opens it to pods with open egress (the platform namespace's
    # impostor), not to another tenant: beta's egress still denies it (both ends must allow).
    found = isolation_findings(objects, environment())
    assert found and not any("bh-beta" in f or "bh-gamma" in f for f in found), found
    for policy in _policies(objects, "bh-beta-serve"):
        for rule in policy["spec"].get("egress", []):
            rule.setdefault("to", []).append({"namespaceSelector": {}})
            rule.pop("ports", None)
    found = isolation_findings(objects, environment())
    assert any("bh-beta-serve" in f and "bh-acme-serve" in f for f in found), found


def test_egress_to_the_metadata_address_is_found() -> None:
    objects = rendered()
    (policy, *_) = _policies(objects, "bh-beta-serve")
    policy["spec"]["policyTypes"] = ["Ingress", "Egress"]
    policy["spec"].setdefault("egress", []).append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    assert any("169.254.169.254" in f for f in isolation_findings(objects, environment()))


def test_a_privileged_model_server_and_a_wide_role_are_found() -> None:
    objects = copy.deepcopy(rendered())
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["privileged"] = True
    assert pod_security_restricted(objects, require_apparmor=True)
    role = next(o for o in objects if o["kind"] == "Role")
    role["rules"].append({"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]})
    assert multi_tenancy(objects)


@pytest.mark.parametrize("overlay", ["single-node", "ha"])
def test_the_platform_package_and_the_tenants_together_pass_the_proofs(overlay: str) -> None:
    """The real gateway (the Kustomize package's) beside every tenant: the same proofs hold,
    and the gateway's own policies let it reach the model servers and them pull from it."""
    from tests.unit.k8s.test_kustomize import ROOT, kustomize

    platform = kustomize(ROOT / "overlays" / overlay)
    objects = platform + rendered()
    assert isolation_findings(objects, environment()) == []
    assert pod_security_restricted(objects, require_apparmor=True) == []
    matrix, _ = isolation_matrix(objects, environment())
    gateway, sequencer = "bulkhead/bulkhead-gateway", "bulkhead/bulkhead-audit-sequencer"
    servers = {edge[1] for edge in matrix.edges if "/m-" in edge[1]}
    assert len(servers) == 4
    for server in servers:
        assert (gateway, server, 8000, "TCP") in matrix.edges
        assert (server, gateway, 8080, "TCP") in matrix.edges  # the init container's pull
        assert not any(edge[0] == sequencer for edge in matrix.edges if edge[1] == server)
