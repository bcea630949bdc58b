"""The whole Kubernetes path through the real `bulkhead` CLI and renderer.

A real gateway holds the catalog; a tenant imports a model; `bulkhead k8s
reconcile` renders every tenant with the real renderer and applies it to
`RecordingKubeApi` — a recording test double of the API server, NOT a
cluster: it proves what Bulkhead sends, not how a real API server behaves.
What was applied is then held to the proofs (no edge between tenants or into
training, model servers reached from the gateway alone, no metadata address,
Pod Security `restricted`, the multi-tenancy checks); the Secret minted by
`bulkhead k8s pull-secret` pulls exactly what the rendered init container
asks for; deleting the tenant prunes its namespaces.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bulkhead.k8s.checks import multi_tenancy, pod_security_restricted
from bulkhead.k8s.proofs import isolation_findings
from bulkhead.testing.kube_api import RecordingKubeApi
from tests.cli.test_cli import bulkhead, clean_env
from tests.support.artifacts import import_model, model_files
from tests.support.gateway import GatewayThread
from tests.support.kube import TOKEN, kubeconfig

DIGEST = "@sha256:" + "ab" * 32
CONFIG = {
    "vllm_image": "registry.example/vllm/vllm-openai" + DIGEST,
    "bulkhead_image": "registry.example/bulkhead/bulkhead" + DIGEST,
}


@pytest.fixture
def api() -> Iterator[RecordingKubeApi]:
    with RecordingKubeApi(token=TOKEN) as double:
        yield double


def k8s(gw: GatewayThread, tmp_path: Path, api: RecordingKubeApi, *args: str) -> str:
    config = tmp_path / "k8s.json"
    config.write_text(json.dumps(CONFIG))
    where = ["--kubeconfig", str(kubeconfig(tmp_path / "kubeconfig", api))]
    if args[0] in {"render", "pull-secret"}:
        where = []
    if args[0] != "pull-secret":
        where += ["--config", str(config)]
    result = bulkhead("--server", gw.url, "--key", gw.admin_key, "k8s", *args, *where,
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr
    return result.stdout


def test_reconcile_applies_what_the_proofs_hold_and_the_pull_secret_pulls_it(
    gateway: GatewayThread, api: RecordingKubeApi, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique, tier="dedicated")
    other = unique + "o"
    gateway.tenant(other)
    model = f"{unique}-llama"
    artifact = import_model(gateway, unique, model)
    k8s(gateway, tmp_path, api, "reconcile")

    applied = api.objects()
    assert isolation_findings(applied) == []
    assert multi_tenancy(applied) == []
    assert pod_security_restricted(applied, require_apparmor=True) == []
    (server,) = [
        d for d in api.objects("Deployment") if d["metadata"]["namespace"] == f"bh-{unique}-serve"
    ]
    (init,) = server["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["bulkhead", "model", "pull", "--artifact", artifact,
                               "--into", "/models"]  # fmt: skip
    secret_ref = {e["name"]: e for e in init["env"]}["BULKHEAD_KEY"]["valueFrom"]["secretKeyRef"]

    # The Secret the init container reads: a key limited to this model, which pulls it.
    gateway.hold("admin:keys.create", unique)
    secret = yaml.safe_load(k8s(gateway, tmp_path, api, "pull-secret", "--tenant", unique,
                                "--model", model))  # fmt: skip
    assert secret["metadata"]["name"] == secret_ref["name"]
    assert secret["metadata"]["namespace"] == f"bh-{unique}-serve"
    key = secret["stringData"][secret_ref["key"]]
    into = Path(tempfile.mkdtemp(prefix="bh-k8s-", dir="/dev/shm"))
    try:
        env = clean_env(BULKHEAD_URL=gateway.url, BULKHEAD_KEY=key)
        pulled = bulkhead(*init["command"][1:-1], str(into), cwd=tmp_path, env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert {p.name: p.read_bytes() for p in into.iterdir()} == model_files()
    finally:
        shutil.rmtree(into, ignore_errors=True)
    # The same key reaches no other tenant's model and pulls nothing but its own.
    listed = gateway.call("GET", "/v1/models", key).body["data"]
    assert [m["id"] for m in listed] == [model]

    gateway.grant("admin:tenants.delete", unique)
    gateway.must("DELETE", f"/admin/v1/tenants/{unique}")
    k8s(gateway, tmp_path, api, "reconcile")
    assert api.find("Namespace", f"bh-{unique}-serve") is None
    assert api.find("Namespace", f"bh-{unique}-train") is None
    assert api.find("Namespace", f"bh-{other}-serve") is not None


def test_pull_secret_refuses_a_model_that_is_not_the_tenants_import(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    result = bulkhead("--server", gateway.url, "--key", gateway.admin_key, "k8s", "pull-secret",
                      "--tenant", unique, "--model", "no-such", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "has no imported model" in result.stderr
