"""Fine-tuned adapters reach vLLM: the base's Deployment in the tenant's namespace serves them.

vLLM's flags (`--enable-lora`, `--max-lora-rank`, `--max-loras`, `--lora-modules
name=path`) are those of its OpenAI server's documentation; each adapter is pulled by its
own init container with its own pull Secret into its own memory-backed volume, and a
pod-template annotation hashing the adapter list rolls the Deployment when it changes.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from bulkhead.k8s.checks import multi_tenancy, pod_security_restricted
from bulkhead.k8s.proofs import isolation_findings
from bulkhead.k8s.render import ModelView, model_object, pull_secret, render_all, render_tenant
from bulkhead.k8s.render.lora import ADAPTERS_ANNOTATION
from bulkhead.k8s.render.views import LORA_WORKER
from tests.unit.k8s.catalog import MODELS, SHARED, TENANTS, config

Obj = dict[str, Any]
FT_OWN = ModelView(
    "ft:acme/Llama-3-8B:acme:sql:ftjob-1", owner="acme", worker=LORA_WORKER,
    artifact="art_ad1", base="artifact:art_acme1",
)  # fmt: skip
FT_OWN2 = ModelView(
    "ft:acme/Llama-3-8B:acme:faq:ftjob-2", owner="acme", worker=LORA_WORKER,
    artifact="art_ad2", base="artifact:art_acme1",
)  # fmt: skip
FT_SHARED = ModelView(
    "ft:shared-llm:acme:x:ftjob-3", owner="acme", worker=LORA_WORKER,
    artifact="art_ad3", base="shared-llm",
)  # fmt: skip
FT_BETA = ModelView(
    "ft:beta-chat:beta:y:ftjob-4", owner="beta", worker=LORA_WORKER,
    artifact="art_ad4", base="beta-chat",
)  # fmt: skip
FT_ORPHAN = ModelView(
    "ft:gone:acme:z:ftjob-5", owner="acme", worker=LORA_WORKER, artifact="art_ad5", base="gone"
)
CATALOG = (*MODELS, FT_OWN, FT_OWN2, FT_SHARED, FT_BETA, FT_ORPHAN)


def deployment(objects: list[Obj], model: str, namespace: str = "bh-acme-serve") -> Obj:
    return next(
        o
        for o in objects
        if o["kind"] == "Deployment"
        and o["metadata"]["name"] == model_object(model)
        and o["metadata"]["namespace"] == namespace
    )


def vllm(dep: Obj) -> Obj:
    return dep["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_the_bases_vllm_serves_the_tenants_adapters() -> None:
    objects = render_tenant(SHARED, CATALOG, config())
    args = vllm(deployment(objects, "acme/Llama-3-8B"))["args"]
    at = args.index("--enable-lora")
    assert args[at:] == [
        "--enable-lora", "--max-lora-rank", "16", "--max-loras", "2", "--lora-modules",
        f"{FT_OWN2.name}=/adapters/art_ad2", f"{FT_OWN.name}=/adapters/art_ad1",
    ]  # fmt: skip
    # The fine-tuned models get no Deployment of their own.
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert model_object(FT_OWN.name) not in names and model_object(FT_ORPHAN.name) not in names


def test_each_adapter_is_pulled_with_its_own_key_into_its_own_memory_volume() -> None:
    dep = deployment(render_tenant(SHARED, CATALOG, config()), "acme/Llama-3-8B")
    pod = dep["spec"]["template"]["spec"]
    inits = {c["command"][4]: c for c in pod["initContainers"]}
    assert set(inits) == {"art_acme1", "art_ad1", "art_ad2"}
    adapter = inits["art_ad1"]
    assert adapter["command"] == [
        "bulkhead", "model", "pull", "--artifact", "art_ad1", "--into", "/adapters/art_ad1"
    ]  # fmt: skip
    key = next(e for e in adapter["env"] if e["name"] == "BULKHEAD_KEY")
    assert key["valueFrom"]["secretKeyRef"]["name"] == pull_secret(FT_OWN.name)
    volume = adapter["volumeMounts"][0]["name"]
    assert {"name": volume, "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}} in (
        pod["volumes"]
    )
    mounts = vllm(dep)["volumeMounts"]
    assert {"name": volume, "mountPath": "/adapters/art_ad1", "readOnly": True} in mounts
    plain = vllm(deployment(render_tenant(SHARED, MODELS, config()), "acme/Llama-3-8B"))
    extra = 2 * 512
    assert int(vllm(dep)["resources"]["limits"]["memory"][:-2]) == (
        int(plain["resources"]["limits"]["memory"][:-2]) + extra
    )


def test_a_shared_base_gets_a_private_server_for_the_tenants_adapters() -> None:
    objects = render_tenant(SHARED, CATALOG, config())
    dep = deployment(objects, "shared-llm")
    assert f"{FT_SHARED.name}=/adapters/art_ad3" in vllm(dep)["args"]
    # Without adapters a shared-tier tenant runs no server for a shared model.
    plain = render_tenant(SHARED, MODELS, config())
    assert not [o for o in plain if o["metadata"]["name"] == model_object("shared-llm")]


def test_another_tenants_adapter_never_reaches_this_tenants_server() -> None:
    objects = render_all(TENANTS, CATALOG, config())
    acme = [o for o in objects if o["metadata"].get("namespace") == "bh-acme-serve"]
    assert "art_ad4" not in str(acme)
    beta = vllm(deployment(objects, "beta-chat", "bh-beta-serve"))["args"]
    assert f"{FT_BETA.name}=/adapters/art_ad4" in beta
    assert beta[beta.index("--max-lora-rank") + 1] == "32"  # the mig tier's largest rank


def test_an_adapter_without_its_base_is_left_out() -> None:
    assert "art_ad5" not in str(render_tenant(SHARED, CATALOG, config()))


def test_the_adapter_list_hash_rolls_the_deployment() -> None:
    def annotation(models: tuple[ModelView, ...]) -> str | None:
        dep = deployment(render_tenant(SHARED, models, config()), "acme/Llama-3-8B")
        meta = dep["spec"]["template"]["metadata"]
        return meta.get("annotations", {}).get(ADAPTERS_ANNOTATION)  # type: ignore[no-any-return]

    one, two = annotation((*MODELS, FT_OWN)), annotation((*MODELS, FT_OWN, FT_OWN2))
    assert annotation(MODELS) is None
    assert one and two and one != two
    assert annotation((*MODELS, FT_OWN2, FT_OWN)) == two  # order in the catalog: no change


@pytest.mark.parametrize("version", ["1.33.0", "1.35.0"])
def test_the_set_with_adapters_is_valid_and_passes_the_proofs(version: str) -> None:
    objects = render_all(TENANTS, CATALOG, config(gateway_ca_pem=None))
    for item in objects:
        kubernetes_validate.validate(item, version, strict=True)
    assert pod_security_restricted(objects, require_apparmor=True) == []
    assert multi_tenancy(objects) == []
    assert isolation_findings(objects) == []


@pytest.mark.parametrize(
    "item",
    [
        {"name": "ft:a", "worker": LORA_WORKER, "artifact": "art_1", "base": "smollm2-135m"},
        {"name": "ft:a", "worker": LORA_WORKER, "artifact": "art_1",
         "options": {"base": "smollm2-135m"}},
    ],
)  # fmt: skip
def test_the_base_is_read_from_the_model_or_its_options(item: dict[str, Any]) -> None:
    view = ModelView.from_api({"kind": "local", **item})
    assert view.base == "smollm2-135m" and view.artifact == "art_1"
