"""The rendered objects of one tenant of each tier: namespaces, policies, RBAC, model servers."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest

from bulkhead.cli.k8s import file_path, to_yaml
from bulkhead.domain import Tier
from bulkhead.errors import ConfigError, InvalidRequest
from bulkhead.k8s.config import DENIED_CIDRS, K8sConfig
from bulkhead.k8s.render import (
    ModelView,
    TenantView,
    pull_secret,
    render_all,
    render_tenant,
)
from tests.unit.k8s.catalog import (
    BULKHEAD,
    DEDICATED,
    MIG,
    MODELS,
    SHARED,
    TENANTS,
    VLLM,
    config,
    of,
    one,
    pods,
)

GOLDEN = Path(__file__).parent / "golden"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# Namespaces, labels, names ---------------------------------------------------------------


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.tier.value)
def test_two_namespaces_enforce_restricted(tenant: TenantView) -> None:
    objects = render_tenant(tenant, MODELS, config())
    names = {n["metadata"]["name"]: n["metadata"]["labels"] for n in of(objects, "Namespace")}
    assert set(names) == {f"bh-{tenant.name}-serve", f"bh-{tenant.name}-train"}
    for found in names.values():
        for mode in ("enforce", "audit", "warn"):
            assert found[f"pod-security.kubernetes.io/{mode}"] == "restricted"
            assert found[f"pod-security.kubernetes.io/{mode}-version"] == "latest"


def test_every_object_carries_owner_labels_and_a_dns_label_name() -> None:
    objects = render_all(TENANTS, MODELS, config())
    for o in objects:
        found = o["metadata"]["labels"]
        assert found["app.kubernetes.io/managed-by"] == "bulkhead"
        name = o["metadata"]["name"]
        assert len(name) <= 63 and DNS_LABEL.match(name), name
        namespace = o["metadata"].get("namespace")
        if namespace == "bulkhead":
            assert "bulkhead.dev/tenant" not in found  # platform-wide
            assert found["bulkhead.dev/component"] == "gpu"
        else:
            tenant = found["bulkhead.dev/tenant"]
            assert (namespace or name).startswith(f"bh-{tenant}-")


@pytest.mark.parametrize(
    "name", ["Acme", "a_b", "-acme", "acme-", "x" * 55, "", "acme.corp", "ünï"]
)
def test_a_tenant_name_that_cannot_name_a_namespace_is_refused(name: str) -> None:
    with pytest.raises(InvalidRequest, match="cannot name a Kubernetes namespace"):
        render_tenant(TenantView(name, "t1", Tier.SHARED), (), config())


def test_the_longest_tenant_name_still_fits() -> None:
    objects = render_tenant(TenantView("x" * 54, "t1", Tier.SHARED), (), config())
    assert {len(n["metadata"]["name"]) for n in of(objects, "Namespace")} == {63, 63}


def test_output_is_deterministic_whatever_the_input_order() -> None:
    first = render_all(TENANTS, MODELS, config())
    shuffled_t, shuffled_m = list(TENANTS), list(MODELS)
    random.Random(7).shuffle(shuffled_t)
    random.Random(7).shuffle(shuffled_m)
    again = render_all(shuffled_t, shuffled_m, config())
    assert json.dumps(first) == json.dumps(again)
    kinds = [o["kind"] for o in first]
    assert kinds.index("Namespace") == 0 and kinds[-1] == "Deployment"


def test_models_with_names_that_only_differ_in_punctuation_get_distinct_objects() -> None:
    models = [ModelView("org/m.1", owner="acme"), ModelView("org-m-1", owner="acme")]
    found = {d["metadata"]["name"] for d in of(render_tenant(SHARED, models, config()), "Service")}
    assert len(found) == 2


# Network policies -----------------------------------------------------------------------


def policies(tenant: TenantView, **cfg: Any) -> dict[tuple[str, str], Any]:
    objects = render_tenant(tenant, MODELS, config(**cfg))
    return {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]
        for o in of(objects, "NetworkPolicy")
    }


def test_both_namespaces_deny_everything_by_default() -> None:
    found = policies(SHARED)
    for namespace in ("bh-acme-serve", "bh-acme-train"):
        spec = found[(namespace, "bh-default-deny")]
        assert spec == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_model_servers_take_calls_only_from_the_gateway_on_8000() -> None:
    spec = policies(SHARED)[("bh-acme-serve", "bh-model-server")]
    assert spec["podSelector"] == {"matchLabels": {"bulkhead.dev/component": "model-server"}}
    assert spec["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "bulkhead"}
                    },
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "bulkhead-gateway"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8000}],
        }
    ]
    dns, gateway = spec["egress"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert gateway["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_training_takes_nothing_and_reaches_nothing_not_even_dns() -> None:
    spec = policies(SHARED)[("bh-acme-train", "bh-training")]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == []
    assert spec["egress"] == []


def test_the_vector_store_has_its_own_policy() -> None:
    spec = policies(SHARED)[("bh-acme-serve", "bh-vector-store")]
    assert spec["podSelector"] == {"matchLabels": {"bulkhead.dev/component": "vector-store"}}
    assert spec["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 6333}]
    assert len(spec["egress"]) == 1


def ip_blocks(found: dict[tuple[str, str], Any]) -> list[dict[str, Any]]:
    return [
        peer["ipBlock"]
        for spec in found.values()
        for rule in spec.get("egress", []) + spec.get("ingress", [])
        for peer in rule.get("to", []) + rule.get("from", [])
        if "ipBlock" in peer
    ]


def test_no_ip_block_without_configured_egress() -> None:
    assert ip_blocks(policies(SHARED)) == []


def test_allowed_egress_excepts_every_metadata_and_link_local_range() -> None:
    blocks = ip_blocks(policies(SHARED, egress_cidrs=["0.0.0.0/0", "::/0", "10.0.0.0/8"]))
    assert blocks == [
        {
            "cidr": "0.0.0.0/0",
            "except": [
                "169.254.169.254/32",
                "169.254.0.0/16",
                "100.100.100.200/32",
                "168.63.129.16/32",
            ],
        },
        {"cidr": "::/0", "except": ["fd00:ec2::254/128", "fe80::/10"]},
        {"cidr": "10.0.0.0/8"},
    ]
    for block in blocks:
        net = ipaddress.ip_network(block["cidr"])
        for denied in map(ipaddress.ip_network, DENIED_CIDRS):
            if denied.version == net.version and denied.subnet_of(net):  # type: ignore[arg-type]
                assert str(denied) in block["except"]


def test_egress_inside_a_denied_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=re.escape("lies inside the denied 169.254.0.0/16")):
        config(egress_cidrs=["169.254.169.0/24"])


# Service accounts and RBAC ---------------------------------------------------------------


def test_no_service_account_mounts_a_token() -> None:
    objects = render_tenant(SHARED, MODELS, config())
    accounts = of(objects, "ServiceAccount")
    assert {(a["metadata"]["namespace"], a["metadata"]["name"]) for a in accounts} == {
        ("bh-acme-serve", "default"),
        ("bh-acme-serve", "bh-model-server"),
        ("bh-acme-serve", "bh-vector-store"),
        ("bh-acme-train", "default"),
        ("bh-acme-train", "bh-training"),
    }
    assert {a["automountServiceAccountToken"] for a in accounts} == {False}
    for pod in pods(objects):
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == "bh-model-server"


def test_tenant_admins_only_read_pods_logs_and_events() -> None:
    objects = render_tenant(SHARED, MODELS, config())
    for namespace in ("bh-acme-serve", "bh-acme-train"):
        role = one(objects, "Role", namespace, "bh-tenant-admin")
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
            assert set(rule["resources"]) <= {"pods", "pods/log", "events"}
        binding = one(objects, "RoleBinding", namespace, "bh-tenant-admin")
        assert binding["subjects"] == [
            {
                "kind": "Group",
                "apiGroup": "rbac.authorization.k8s.io",
                "name": "bulkhead:tenant:acme:admins",
            }
        ]
        assert binding["roleRef"]["kind"] == "Role"
    assert not of(objects, "ClusterRole") and not of(objects, "ClusterRoleBinding")


# Model servers ---------------------------------------------------------------------------


def served(tenant: TenantView) -> set[str]:
    objects = render_tenant(tenant, MODELS, config())
    return {
        d["metadata"]["annotations"]["bulkhead.dev/model-name"] for d in of(objects, "Deployment")
    }


def test_which_models_run_in_a_tenants_namespace() -> None:
    assert served(SHARED) == {"acme/Llama-3-8B"}  # its own local ones; no upstream
    assert served(MIG) == {"beta-chat"}  # a shared model runs on the shared pool
    assert served(DEDICATED) == {"gamma-own", "shared-llm"}  # its own copy of a granted one


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.tier.value)
def test_every_model_pod_is_hardened(tenant: TenantView) -> None:
    objects = render_tenant(tenant, MODELS, config())
    assert of(objects, "Deployment")
    for pod in pods(objects):
        assert not pod["hostNetwork"] and not pod["hostPID"] and not pod["hostIPC"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["securityContext"]["appArmorProfile"] == {"type": "RuntimeDefault"}
        assert all("hostPath" not in v for v in pod["volumes"])
        for c in pod["containers"] + pod.get("initContainers", []):
            assert "@sha256:" in c["image"]
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsUser"] > 0
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        volumes = {v["name"]: v["emptyDir"] for v in pod["volumes"]}
        assert volumes["models"]["medium"] == "Memory" and volumes["models"]["sizeLimit"]
        assert volumes["tmp"]["medium"] == "Memory"
        vllm = pod["containers"][0]
        assert vllm["image"] == VLLM
        assert {"name": "models", "mountPath": "/models", "readOnly": True} in vllm["volumeMounts"]
        assert vllm["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_placement_by_tier() -> None:
    (acme,) = pods(render_tenant(SHARED, MODELS, config()))
    assert "runtimeClassName" not in acme and "affinity" not in acme
    assert not [r for r in acme["containers"][0]["resources"]["limits"] if "nvidia" in r]
    (beta,) = pods(render_tenant(MIG, MODELS, config()))
    assert beta["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert "nvidia.com/gpu" not in beta["containers"][0]["resources"]["limits"]
    for gamma in pods(render_tenant(DEDICATED, MODELS, config())):
        assert gamma["runtimeClassName"] == "gvisor"
        assert gamma["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        terms = gamma["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"] == [
            {
                "matchExpressions": [
                    {"key": "bulkhead.dev/dedicated-to", "operator": "In", "values": ["gamma"]}
                ]
            }
        ]
        assert gamma["tolerations"] == [
            {
                "key": "bulkhead.dev/dedicated-to",
                "operator": "Equal",
                "value": "gamma",
                "effect": "NoSchedule",
            }
        ]


def test_an_imported_model_is_decrypted_into_memory_by_the_bulkhead_image() -> None:
    (pod,) = pods(render_tenant(SHARED, MODELS, config()))
    (fetch,) = pod["initContainers"]
    assert fetch["image"] == BULKHEAD
    assert fetch["command"] == [
        "bulkhead", "model", "pull", "--artifact", "art_acme1", "--into", "/models"
    ]  # fmt: skip
    env = {e["name"]: e for e in fetch["env"]}
    assert env["BULKHEAD_URL"]["value"] == "https://bulkhead-gateway.bulkhead.svc:8080"
    # One Secret per model: its key is a model developer's, limited to that model.
    assert env["BULKHEAD_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": pull_secret(MODELS[0].name), "key": "api-key"}
    }
    assert {"name": "models", "mountPath": "/models"} in fetch["volumeMounts"]
    assert pod["containers"][0]["args"][:2] == ["--model", "/models"]
    assert not any("valueFrom" in e for e in pod["containers"][0]["env"])  # vLLM holds no key
    (beta,) = pods(render_tenant(MIG, MODELS, config()))
    assert "initContainers" not in beta and beta["containers"][0]["args"][1] == "beta/chat-7b"


def test_a_model_server_needs_both_images_pinned() -> None:
    with pytest.raises(ConfigError, match="vllm_image is not set"):
        render_tenant(SHARED, MODELS, K8sConfig())
    assert render_tenant(SHARED, (), K8sConfig())  # no model server: no image needed


# Golden files: one tenant of each tier, as `bulkhead k8s render` prints it ---------------------


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.tier.value)
def test_golden(tenant: TenantView) -> None:
    """Regenerate with BULKHEAD_UPDATE_GOLDEN=1 after an intended change, and review the diff."""
    text = to_yaml(render_tenant(tenant, MODELS, config()))
    path = GOLDEN / f"{tenant.tier.value}.yaml"
    if os.environ.get("BULKHEAD_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text


def test_file_layout_per_object() -> None:
    objects = render_all(TENANTS, MODELS, config())
    paths = [str(file_path(o)) for o in objects]
    assert len(set(paths)) == len(paths)
    assert "_cluster/namespace-bh-acme-serve.yaml" in paths
    assert "bh-acme-serve/resourcequota-bh-quota.yaml" in paths


CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0E=\n-----END CERTIFICATE-----\n"


def test_the_gateways_ca_is_trusted_by_the_init_container_alone() -> None:
    objects = render_tenant(SHARED, MODELS, config(gateway_ca_pem=CA_PEM))
    (ca,) = of(objects, "ConfigMap", "bh-acme-serve")
    assert ca["metadata"]["name"] == "bh-gateway-ca" and ca["data"] == {"ca.crt": CA_PEM}
    (pod,) = pods(objects)
    (fetch,) = pod["initContainers"]
    env = {e["name"]: e.get("value") for e in fetch["env"]}
    assert env["SSL_CERT_FILE"] == "/etc/bulkhead/gateway-ca/ca.crt"
    mount = {"name": "gateway-ca", "mountPath": "/etc/bulkhead/gateway-ca", "readOnly": True}
    assert mount in fetch["volumeMounts"]
    assert not any(m["name"] == "gateway-ca" for m in pod["containers"][0]["volumeMounts"])
    # Without a CA of its own, no ConfigMap: the image's trust store is used.
    assert of(render_tenant(SHARED, MODELS, config()), "ConfigMap") == []
