"""`bulkhead k8s render` against a real management API with the platform key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.cli.test_cli import (
    as_admin,
    as_json,
    assert_clean_failure,
    assert_refused_before_any_request,
)
from tests.security.test_data_import import model_upload
from tests.support.gateway import GatewayThread, http

VLLM = "registry.example/vllm/vllm-openai@sha256:" + "a" * 64
BULKHEAD = "registry.example/bulkhead/bulkhead@sha256:" + "b" * 64


def cluster_config(tmp_path: Path, **more: str) -> str:
    path = tmp_path / "k8s.yaml"
    values = {"vllm_image": VLLM, "bulkhead_image": BULKHEAD} | more
    path.write_text(yaml.safe_dump(values))
    return str(path)


def render(gateway: GatewayThread, tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    config = cluster_config(tmp_path)
    result = as_admin(gateway, tmp_path, "k8s", "render", *args, "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("---\n")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def hard(objects: list[dict[str, Any]], namespace: str) -> dict[str, str]:
    quota = next(
        o
        for o in objects
        if o["kind"] == "ResourceQuota" and o["metadata"]["namespace"] == namespace
    )
    found: dict[str, str] = quota["spec"]["hard"]
    return found


def test_render_an_imported_model_of_a_dedicated_tenant(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique, "dedicated")
    path = f"{gateway.url}/admin/v1/tenants/{unique}/model-artifacts?model={unique}-imported"
    imported = http("POST", path, gateway.admin_key, raw=model_upload())
    assert imported.status == 201, imported.body
    listed = gateway.must("GET", "/admin/v1/models")["data"]
    mine = next(m for m in listed if m["name"] == f"{unique}-imported")
    assert mine["artifact"] == imported.body["id"]  # the model's listing names its artifact

    objects = render(gateway, tmp_path, "--tenant", unique)
    namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    assert namespaces == {f"bh-{unique}-serve", f"bh-{unique}-train"}
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    assert fetch["command"][3:5] == ["--artifact", imported.body["id"]]
    assert pod["containers"][0]["image"] == VLLM
    assert pod["tolerations"][0]["value"] == unique
    assert hard(objects, f"bh-{unique}-serve")["requests.nvidia.com/gpu"] == "1"


def test_raising_gpus_above_the_tier_needs_the_grant(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique, "mig")
    path = f"/admin/v1/tenants/{unique}/limits"
    set_limits = ("tenant", "set-limits", unique)
    within = as_json(gateway, tmp_path, *set_limits, "--mig-instances", "1", "--pods", "10")
    assert within["limits"]["pods"] == {"value": 10, "source": "tenant", "tier_default": 50}
    refused = gateway.admin("PATCH", path, {"mig_instances": 3})
    assert refused.status == 403, refused.body
    unbounded = as_admin(gateway, tmp_path, *set_limits, "--pods", "none")
    assert unbounded.returncode != 0
    assert_clean_failure(unbounded, "pods must be a whole number >= 0")
    gateway.grant("admin:quota_requests.approve", unique)
    raised = gateway.admin("PATCH", path, {"mig_instances": 3})
    assert raised.status == 200, raised.body
    assert raised.body["limits"]["mig_instances"] == {
        "value": 3,
        "source": "tenant",
        "tier_default": 1,
    }
    objects = render(gateway, tmp_path, "--tenant", unique)
    # The two namespaces share the limits: train 25 % (rounded down), serve the rest.
    serve, train = hard(objects, f"bh-{unique}-serve"), hard(objects, f"bh-{unique}-train")
    assert serve["requests.nvidia.com/mig-1g.10gb"] == "3" and serve["pods"] == "8"
    assert train["requests.nvidia.com/mig-1g.10gb"] == "0" and train["pods"] == "2"


def test_render_all_into_a_folder(gateway: GatewayThread, tmp_path: Path, unique: str) -> None:
    gateway.tenant(unique, "mig")
    config = cluster_config(tmp_path)
    out = tmp_path / "out"
    result = as_admin(
        gateway, tmp_path, "k8s", "render", "--all", "-o", str(out), "--config", config
    )
    assert result.returncode == 0, result.stderr
    assert "label each MIG node: nvidia.com/mig.config=bulkhead" in result.stderr
    namespace = out / "_cluster" / f"namespace-bh-{unique}-serve.yaml"
    assert yaml.safe_load(namespace.read_text())["metadata"]["name"] == f"bh-{unique}-serve"
    assert (out / f"bh-{unique}-train" / "networkpolicy-bh-training.yaml").is_file()
    assert (out / "bulkhead" / "configmap-bh-mig-parted.yaml").is_file()
    listed = as_admin(
        gateway, tmp_path, "k8s", "render", "--tenant", unique, "--config", config, "--json"
    )
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    assert document["items"][0]["metadata"]["name"] == f"bh-{unique}-serve"
    as_json_files = tmp_path / "json"
    written = as_admin(
        gateway, tmp_path, "k8s", "render", "--tenant", unique, "--config", config, "--json",
        "-o", str(as_json_files),
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    quota = as_json_files / f"bh-{unique}-serve" / "resourcequota-bh-quota.json"
    assert json.loads(quota.read_text())["kind"] == "ResourceQuota"


def test_a_tag_instead_of_a_digest_is_refused_before_any_request(tmp_path: Path) -> None:
    from tests.cli.test_cli import offline

    config = cluster_config(tmp_path, vllm_image="vllm/vllm-openai:latest")
    result = offline(tmp_path, "k8s", "render", "--tenant", "acme", "--config", config)
    assert result.returncode == 2
    assert_refused_before_any_request(result, "vllm_image: an image pinned by digest")
    both = offline(tmp_path, "k8s", "render", "--tenant", "acme", "--all")
    assert both.returncode == 2
    assert_refused_before_any_request(both, "name one of --tenant T or --all")


def test_an_unknown_tenant_is_a_clean_error(gateway: GatewayThread, tmp_path: Path) -> None:
    result = as_admin(gateway, tmp_path, "k8s", "render", "--tenant", "no-such-tenant")
    assert result.returncode != 0
    assert_clean_failure(result, "not found")
