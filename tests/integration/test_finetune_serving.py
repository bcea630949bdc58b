"""Fine-tuning end to end through a real gateway: train, store, serve, isolate, shred.

The gateway is built without a runner, so `build` makes the real `SandboxRunner`
(the workers' sandbox mode, the data dir hidden).  A tenant uploads a small
JSONL file, creates a job on the bundled SmolLM2-135M and waits for
`succeeded`; its `fine_tuned_model` is listed for it alone, a worker of kind
hf-causal-lora (base + adapter, both over stdin) answers its chat, another
tenant gets 404 `model_not_found` for it everywhere, logprobs on it need
`allow_fine_tuned_logprobs` on top of `allow_logprobs`, no file in the data dir
holds the adapter's or the training data's plaintext, and deleting the tenant
crypto-shreds the adapter.  One job, tiny steps: the file stays near a minute.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from bulkhead.crypto import DecryptionFailed, decrypt_stream_bytes
from bulkhead.finetune.runner import SandboxRunner
from bulkhead.store.artifacts import KIND, OPTION
from tests.conftest import database_urls
from tests.support.gateway import GatewayThread

pytestmark = pytest.mark.local

BASE = "smol-base"
MARKER = "zqxservedmarker"
WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "rocket", MARKER]


def example(word: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Acknowledge."},
            {"role": "user", "content": f"word: {word}"},
            {"role": "assistant", "content": f"ACK-{word}"},
        ]
    }


TRAINING = b"".join(orjson.dumps(example(w)) + b"\n" for w in WORDS)


@pytest.fixture(scope="module")
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url, admin = database_urls("postgresql", request)
    env = {"BULKHEAD_FINE_TUNING_JOBS": "1"}
    data = tmp_path_factory.mktemp("ftserve") / "data"
    gateway = GatewayThread(data, url, admin_url=admin, workers=True, env=env).start()
    runner = gateway.app.fine_tuning_runner
    assert isinstance(runner, SandboxRunner)  # built from settings: no runner was passed
    assert runner.config.hidden == (Path(gateway.settings.data_dir),)
    try:
        yield gateway
    finally:
        gateway.stop()
    assert not runner.directory.exists()  # closed with the application


def client(gw: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=120)


def chat(gw: GatewayThread, key: str, model: str, **extra: Any) -> Any:
    body = {"model": model, "messages": example("meadow")["messages"][:-1], "max_tokens": 8}
    return gw.call("POST", "/v1/chat/completions", key, {**body, "temperature": 0, **extra})


def wait_job(gw: GatewayThread, key: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while True:
        job = gw.call("GET", f"/v1/fine_tuning/jobs/{job_id}", key).body
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        assert time.monotonic() < deadline, job
        time.sleep(0.5)


def wait_served(gw: GatewayThread, key: str, model: str) -> Any:
    deadline = time.monotonic() + 240
    while (answer := chat(gw, key, model)).status == 503:
        assert time.monotonic() < deadline, gw.app.workers.status()
        time.sleep(0.5)
    return answer


def scan(root: Path, needles: list[bytes]) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and any(n in path.read_bytes() for n in needles)
    ]


def test_a_tuned_model_is_served_to_its_tenant_alone_and_shredded_with_it(
    gw: GatewayThread,
) -> None:
    gw.must("POST", "/admin/v1/models", {"name": BASE, "worker": "smollm2-135m"})
    for tenant in ("ft-owner", "ft-other"):
        gw.tenant(tenant)
        gw.must("POST", f"/admin/v1/models/{BASE}/grants", {"tenant": tenant})
    owner, other = gw.key("ft-owner", role="model_developer"), gw.key("ft-other")
    # The canary would change the system prompt the model was tuned with.
    guard = "/admin/v1/tenants/ft-owner/guard"
    gw.must("PATCH", guard, {"canary": False})
    tenant_id = gw.must("GET", "/admin/v1/tenants/ft-owner")["id"]
    upload = client(gw, owner).files.create(
        file=("t.jsonl", io.BytesIO(TRAINING)),
        purpose="fine-tune",  # type: ignore[arg-type]
    )
    started = time.monotonic()
    made = client(gw, owner).fine_tuning.jobs.create(
        model=BASE,
        training_file=upload.id,
        hyperparameters={"n_epochs": 3, "batch_size": 3, "learning_rate_multiplier": 10.0},
        suffix="ack",
        extra_body={"bulkhead": {"lora_rank": 4, "max_seq_len": 64}},
    )
    job = wait_job(gw, owner, made.id)
    assert job["status"] == "succeeded", job
    name = f"ft:{BASE}:{tenant_id}:ack:{made.id}"
    assert job["fine_tuned_model"] == name
    trained_s = time.monotonic() - started

    # Listed for its tenant alone; served by a base + adapter worker.
    assert name in {m.id for m in client(gw, owner).models.list()}
    assert name not in {m.id for m in client(gw, other).models.list()}
    answer = wait_served(gw, owner, name)
    assert answer.status == 200, answer.body
    text = answer.body["choices"][0]["message"]["content"]
    # The adapter is on: the tuned model answers in the task's form, the base does not.
    assert "ack-" in text.lower(), answer.body
    base_text = wait_served(gw, owner, BASE).body["choices"][0]["message"]["content"]
    assert "ack-" not in base_text.lower(), base_text
    served_s = time.monotonic() - started
    print(f"trained in {trained_s:.0f} s, served in {served_s:.0f} s: {text!r} / {base_text!r}")
    worker = next(w for w in gw.app.workers.status() if w["model"] == name)
    assert worker["kind"] == "hf-causal-lora" and worker["ready"]

    # Another tenant: the name is unknown everywhere.
    for path, body in (
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/completions", {"prompt": "hi"}),
    ):
        refused = gw.call("POST", path, other, {"model": name, "max_tokens": 2, **body})
        assert refused.status == 404, refused.body
        assert refused.body["error"]["code"] == "model_not_found"

    # Logprobs: off, then allowed on the base but not on the tuned model, then on both.
    assert chat(gw, owner, name, logprobs=True).status == 403
    gw.must("PATCH", guard, {"allow_logprobs": True})
    denied = chat(gw, owner, name, logprobs=True)
    assert denied.status == 403 and "fine-tuned" in denied.body["error"]["message"]
    gw.must("PATCH", guard, {"allow_fine_tuned_logprobs": True})
    assert chat(gw, owner, name, logprobs=True).status == 200

    # The adapter is stored encrypted: no plaintext of it or of the training data on disk.
    deployment = next(d for d in gw.app.catalog.snapshot.deployments if d.model.name == name)
    adapter_id = deployment.deployment.options[OPTION]
    files = dict(gw.app.artifacts.load(tenant_id, adapter_id))
    assert set(files) == {"adapter_config.json", "adapter_model.safetensors"}
    weights = bytes(files["adapter_model.safetensors"])
    needles = [weights[-256:], files["adapter_config.json"], MARKER.encode()]
    data_dir = Path(gw.settings.data_dir)
    assert scan(data_dir, needles) == []
    object_id = f"{adapter_id}-1"
    copy = gw.app.artifacts.blobs.get(tenant_id, KIND, object_id)  # e.g. a backup

    # Deleting the tenant shreds the adapter: its key is gone, and so are its blobs and model.
    gw.grant("admin:tenants.delete", "ft-owner")
    assert gw.must("DELETE", "/admin/v1/tenants/ft-owner")["keys_destroyed"] is True
    with pytest.raises(DecryptionFailed):
        kms = gw.app.maintenance.keyring.kms
        decrypt_stream_bytes(copy, tenant_id=tenant_id, kind=KIND, object_id=object_id, kms=kms)
    assert not (data_dir / "blobs" / tenant_id).exists()
    assert all(d.model.name != name for d in gw.app.catalog.snapshot.deployments)
    deadline = time.monotonic() + 30
    while any(w["model"] == name for w in gw.app.workers.status()):
        assert time.monotonic() < deadline, "the tuned model's worker still runs"
        time.sleep(0.2)
    assert scan(data_dir, needles) == []
