"""`bulkhead model import`: a tenant's own model, encrypted at rest, loaded in memory only.

A tiny random LLaMA saved in Hugging Face format (safetensors) is imported
through the CLI into a real gateway whose workers really start; the owning
tenant chats with it through the `openai` SDK, every other tenant sees no
such model, pickle weights are refused, a tampered blob fails closed, and no
byte of the weights is ever found in plaintext on disk.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import update

from bulkhead.errors import IntegrityFailure
from bulkhead.store.schema import ModelArtifactFileRow
from tests.cli.test_cli import as_admin
from tests.support.gateway import GatewayThread

OWNER, OTHER = "imp-owner", "imp-other"


def save_tiny_llama(directory: Path) -> bytes:
    """A 2-layer random LLaMA plus a byte-level BPE tokenizer; returns a weights sample."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from bulkhead.runtime.worker.demo_chat import END_OF_TEXT, build_tokenizer

    tokenizer = build_tokenizer()
    end_id = tokenizer.token_to_id(END_OF_TEXT)
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        initializer_range=0.5,
        bos_token_id=end_id,
        eos_token_id=end_id,
        pad_token_id=end_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(7)
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    (directory / "tokenizer.json").write_text(tokenizer.to_str())
    weights = (directory / "model.safetensors").read_bytes()
    (header,) = struct.unpack_from("<Q", weights)
    middle = 8 + header + (len(weights) - 8 - header) // 2
    return weights[middle : middle + 48]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    directory = tmp_path_factory.mktemp("hf-model")
    return directory, save_tiny_llama(directory)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    gw = GatewayThread(tmp_path_factory.mktemp("import") / "data", None, workers=True).start()
    gw.tenant(OWNER)
    gw.tenant(OTHER)
    yield gw
    gw.stop()


def cli_import(gw: GatewayThread, tmp_path: Path, *args: str) -> Any:
    return as_admin(gw, tmp_path, "model", "import", *args)


def worker_of(gw: GatewayThread, model: str) -> dict[str, Any] | None:
    return next((w for w in gw.app.workers.status() if w["model"] == model), None)


def wait_ready(gw: GatewayThread, model: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        worker = worker_of(gw, model)
        if worker is not None and worker["ready"]:
            return worker
        assert time.monotonic() < deadline, gw.app.workers.status()
        time.sleep(0.2)


def openai_client(gw: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def imported(
    served: GatewayThread, model_dir: tuple[Path, bytes], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    cwd = tmp_path_factory.mktemp("cli")
    result = cli_import(served, cwd, "acme-llama", str(model_dir[0]), "--tenant", OWNER, "--json")
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    wait_ready(served, "acme-llama")
    return out


def test_import_prints_files_with_their_sha256(
    imported: dict[str, Any], model_dir: tuple[Path, bytes]
) -> None:
    import hashlib

    names = {f["name"]: f for f in imported["files"]}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(names)
    weights = (model_dir[0] / "model.safetensors").read_bytes()
    assert names["model.safetensors"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert names["model.safetensors"]["bytes"] == len(weights)
    assert imported["tenant"] == OWNER and imported["worker"] == "hf-causal"


def test_the_human_output_lists_files(
    served: GatewayThread, model_dir: tuple[Path, bytes], tmp_path: Path
) -> None:
    result = cli_import(served, tmp_path, "acme-llama-2", str(model_dir[0]), "--tenant", OWNER)
    assert result.returncode == 0, result.stderr
    assert "model.safetensors" in result.stdout and "sha256" in result.stdout


def test_owner_chats_through_the_openai_sdk(
    served: GatewayThread, imported: dict[str, Any]
) -> None:
    client = openai_client(served, served.key(OWNER))
    assert "acme-llama" in {m.id for m in client.models.list()}
    reply = client.chat.completions.create(
        model="acme-llama", messages=[{"role": "user", "content": "Hello"}], max_tokens=6
    )
    assert reply.model == "acme-llama" and reply.usage is not None
    assert 1 <= reply.usage.completion_tokens <= 6
    chunks = list(
        client.completions.create(model="acme-llama", prompt="Once upon", max_tokens=4, stream=True)
    )
    assert chunks


def test_another_tenant_sees_no_such_model(served: GatewayThread, imported: dict[str, Any]) -> None:
    key = served.key(OTHER)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    theirs = served.call("POST", "/v1/chat/completions", key, {**body, "model": "acme-llama"})
    missing = served.call("POST", "/v1/chat/completions", key, {**body, "model": "no-such-llama"})
    assert theirs.status == missing.status == 404
    assert theirs.body["error"]["code"] == missing.body["error"]["code"] == "model_not_found"
    assert theirs.body["error"]["message"].replace("acme-llama", "X") == missing.body["error"][
        "message"
    ].replace("no-such-llama", "X")
    assert "acme-llama" not in {m.id for m in openai_client(served, key).models.list()}


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.pt", "weights.ckpt"])
def test_pickle_weights_are_refused(
    served: GatewayThread, model_dir: tuple[Path, bytes], tmp_path: Path, weights: str
) -> None:
    bad = tmp_path / "bad-model"
    bad.mkdir()
    for item in model_dir[0].iterdir():
        (bad / item.name).write_bytes(item.read_bytes())
    (bad / weights).write_bytes(b"\x80\x04\x95not really a pickle")
    result = cli_import(served, tmp_path, "pickled", str(bad), "--tenant", OWNER)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert weights in result.stderr and "pickle-based weights are refused" in result.stderr
    assert worker_of(served, "pickled") is None


def test_bad_directories_are_refused(
    served: GatewayThread, model_dir: tuple[Path, bytes], tmp_path: Path
) -> None:
    cases = {
        "no-weights": ({"config.json"}, "no *.safetensors"),
        "no-config": ({"model.safetensors"}, "no config.json"),
        "odd-file": ({"config.json", "model.safetensors", "run.py"}, "'run.py' is not an accepted"),
    }
    for name, (keep, message) in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        for item in keep:
            source = model_dir[0] / item
            (directory / item).write_bytes(source.read_bytes() if source.exists() else b"x")
        result = cli_import(served, tmp_path, name, str(directory), "--tenant", OWNER)
        assert result.returncode != 0 and message in result.stderr, (name, result.stderr)
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "config.json").write_bytes((model_dir[0] / "config.json").read_bytes())
    (forged / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    result = cli_import(served, tmp_path, "forged", str(forged), "--tenant", OWNER)
    assert result.returncode != 0 and "not a valid safetensors file" in result.stderr


def test_a_tenant_key_cannot_import(
    served: GatewayThread, model_dir: tuple[Path, bytes], tmp_path: Path
) -> None:
    key = served.key(OWNER, role="tenant_admin")
    result = as_admin(
        served, tmp_path, "model", "import", "mine", str(model_dir[0]), "--tenant", OWNER, key=key
    )
    assert result.returncode != 0 and worker_of(served, "mine") is None


def test_a_changed_sha256_is_refused_on_load(
    served: GatewayThread, imported: dict[str, Any]
) -> None:
    artifacts = served.app.artifacts
    assert artifacts is not None
    tenants = served.app.catalog.snapshot.tenants.values()
    tenant_id = next(t.id for t in tenants if t.name == OWNER)
    files = dict(artifacts.load(tenant_id, imported["id"]))
    assert files["config.json"].startswith(b"{")
    with served.app.db.platform_transaction() as session:
        session.execute(
            update(ModelArtifactFileRow)
            .where(
                ModelArtifactFileRow.artifact_id == imported["id"], ModelArtifactFileRow.seq == 0
            )
            .values(sha256="0" * 64)
        )
    try:
        with pytest.raises(IntegrityFailure):
            artifacts.load(tenant_id, imported["id"])
    finally:
        with served.app.db.platform_transaction() as session:
            session.execute(
                update(ModelArtifactFileRow)
                .where(
                    ModelArtifactFileRow.artifact_id == imported["id"],
                    ModelArtifactFileRow.seq == 0,
                )
                .values(sha256=next(f["sha256"] for f in imported["files"]))
            )


def test_a_tampered_blob_fails_closed(
    served: GatewayThread,
    model_dir: tuple[Path, bytes],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    result = cli_import(
        served, tmp_path, "tamper-me", str(model_dir[0]), "--tenant", OWNER, "--json"
    )
    assert result.returncode == 0, result.stderr
    artifact = json.loads(result.stdout)
    wait_ready(served, "tamper-me")
    seq = next(i for i, f in enumerate(artifact["files"]) if f["name"] == "model.safetensors")
    owner_dir = next(
        (served.settings.data_dir / "blobs").glob(f"*/model/{artifact['id']}-{seq}.blob")
    )
    sealed = bytearray(owner_dir.read_bytes())
    sealed[len(sealed) // 2] ^= 0x01
    owner_dir.write_bytes(bytes(sealed))
    worker = worker_of(served, "tamper-me")
    assert worker is not None
    os.kill(int(worker["pid"]), signal.SIGKILL)
    key = served.key(OWNER)
    body = {"model": "tamper-me", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    deadline = time.monotonic() + 8
    seen = set()
    while time.monotonic() < deadline:
        response = served.call("POST", "/v1/chat/completions", key, body)
        assert response.status in (500, 502, 503), response.body  # never an answer
        seen.add(response.status)
        time.sleep(0.3)
    assert 503 in seen
    assert "model files failed to load or verify (DecryptionFailed)" in caplog.text
    status = worker_of(served, "tamper-me")
    assert status is not None and not status["ready"]


def test_no_plaintext_weights_on_disk(
    served: GatewayThread, imported: dict[str, Any], model_dir: tuple[Path, bytes]
) -> None:
    sample = model_dir[1]
    roots = [served.settings.data_dir, served.app.workers._dir]
    scanned = 0
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_socket():
                scanned += 1
                assert sample not in path.read_bytes(), path
    assert scanned > 0
