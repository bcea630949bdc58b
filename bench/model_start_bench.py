"""Worker start-up with an imported model: encrypted artifact vs plaintext files.

    python bench/model_start_bench.py [--layers 4] [--runs 5]

What a tenant waits for when its private model (re)starts is the time from
"start the worker" to "the worker serves".  This bench measures exactly that
through `WorkerSupervisor`, sandbox on, for one random LLaMA (~120 MB of
float32 safetensors plus its tokenizer), fed two ways:

- plaintext: the files read from a plain directory on disk (what a platform
  without encryption at rest would do);
- encrypted: `ArtifactService.load` — the blobs decrypted under the tenant's
  KEK and every file's SHA-256 checked, in the gateway, while the worker
  process starts and imports torch and transformers.

Runs are interleaved; the figure is the median.  Target (issue 4): encrypted
model load <= 1.15x plaintext.  `bench/model_load_bench.py` measures the
weights-only step (decrypt + verify vs mmap) on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from bulkhead.crypto import LocalKms, load_or_create_master_key  # noqa: E402
from bulkhead.domain import Tier  # noqa: E402
from bulkhead.runtime import WorkerSpec, WorkerSupervisor  # noqa: E402
from bulkhead.runtime.worker.demo_chat import END_OF_TEXT, build_tokenizer  # noqa: E402
from bulkhead.store import Database, repo, upgrade  # noqa: E402
from bulkhead.store.artifacts import ArtifactService  # noqa: E402
from bulkhead.store.blobs import BlobStore  # noqa: E402
from bulkhead.store.keyring import TenantKeyring  # noqa: E402

TARGET = 1.15
Files = Sequence[tuple[str, bytes | bytearray]]


def save_model(directory: Path, layers: int) -> None:
    tokenizer = build_tokenizer()
    end = tokenizer.token_to_id(END_OF_TEXT)
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=layers,
        num_attention_heads=12,
        num_key_value_heads=12,
        max_position_embeddings=512,
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    (directory / "tokenizer.json").write_text(tokenizer.to_str())


async def start_once(load: Callable[[], Files], key: str) -> float:
    supervisor = WorkerSupervisor(startup_timeout_s=300)
    spec = WorkerSpec(
        key=key,
        kind="hf-causal",
        model_name="bench-llama",
        source=key,
        load_weights=load,
        tenant="bench",
        tier=Tier.DEDICATED,
    )
    start = time.perf_counter()
    supervisor.sync([spec])
    try:
        while time.perf_counter() - start < 300:
            if supervisor.status()[0].get("state") == "ready":
                return time.perf_counter() - start
            await asyncio.sleep(0.01)
        raise RuntimeError("the worker did not become ready")
    finally:
        await supervisor.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bulkhead-start-") as tmp:
        root = Path(tmp)
        plain = root / "plain"
        plain.mkdir()
        save_model(plain, args.layers)
        names = sorted(p.name for p in plain.iterdir())
        size = sum((plain / n).stat().st_size for n in names)

        db = Database(f"sqlite:///{root / 'bench.db'}")
        upgrade(db)
        with db.platform_transaction() as session:
            tenant = repo.create_tenant(session, "bench", Tier.DEDICATED)
        (root / "kms").mkdir()
        kms = LocalKms(root / "kms", load_or_create_master_key(root / "kms" / "master.key"))
        artifacts = ArtifactService(db, TenantKeyring(kms, BlobStore(root / "blobs")))
        artifact = artifacts.import_model(
            tenant, "bench-llama", [(n, (plain / n).read_bytes()) for n in names]
        )

        def plaintext() -> Files:
            return [(n, (plain / n).read_bytes()) for n in names]

        def encrypted() -> Files:
            return artifacts.load(tenant.id, artifact.id)

        asyncio.run(start_once(plaintext, "warm"))  # imports and page cache, once
        times: dict[str, list[float]] = {"plaintext": [], "encrypted": []}
        for i in range(args.runs):
            times["plaintext"].append(asyncio.run(start_once(plaintext, f"p{i}")))
            times["encrypted"].append(asyncio.run(start_once(encrypted, f"e{i}")))
        db.dispose()
    p, e = (statistics.median(times[k]) for k in ("plaintext", "encrypted"))
    ratio = e / p
    print(f"model: {args.layers} layers, {size / 1e6:.0f} MB of files (hf-causal, sandboxed)")
    print(f"worker ready, plaintext files   median of {args.runs}: {p * 1000:8.0f} ms")
    print(f"worker ready, encrypted model   median of {args.runs}: {e * 1000:8.0f} ms")
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"encrypted/plaintext {ratio:.3f}x ({verdict} the <= {TARGET}x target)")


if __name__ == "__main__":
    main()
