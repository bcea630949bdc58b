"""Model load time, encrypted artifact vs plaintext file.

    python bench/model_load_bench.py [--layers 4] [--runs 5]

Builds a random LLaMA (about 160 MB of float32 safetensors by default),
stores it once as a plaintext file and once as an imported, encrypted
artifact (`ArtifactService`: streaming AEAD under the tenant's KEK, SHA-256
recorded), then takes the median of `--runs` interleaved loads of each:

- plaintext: read the file, `safetensors.torch.load(bytes)`, `load_state_dict`;
- encrypted: `ArtifactService.load` (read the blob, `decrypt_stream`, check
  the SHA-256), then the same parse and `load_state_dict`.

Target (issue): encrypted load <= 1.15x plaintext.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from safetensors.torch import load, save  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from bulkhead.crypto import LocalKms, load_or_create_master_key  # noqa: E402
from bulkhead.domain import Tier  # noqa: E402
from bulkhead.store import Database, repo, upgrade  # noqa: E402
from bulkhead.store.artifacts import ArtifactService  # noqa: E402
from bulkhead.store.blobs import BlobStore  # noqa: E402
from bulkhead.store.keyring import TenantKeyring  # noqa: E402

TARGET = 1.15


def build(layers: int) -> tuple[torch.nn.Module, bytes, bytes]:
    config = LlamaConfig(
        vocab_size=8000,
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=layers,
        num_attention_heads=12,
        num_key_value_heads=12,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    weights = save({k: v.contiguous() for k, v in model.state_dict().items()})
    return model, config.to_json_string().encode(), weights


def median_s(fn: Callable[[], None], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    model, config_json, weights = build(args.layers)
    with tempfile.TemporaryDirectory(prefix="bulkhead-bench-") as tmp:
        root = Path(tmp)
        plain = root / "plain" / "model.safetensors"
        plain.parent.mkdir()
        plain.write_bytes(weights)

        db = Database(f"sqlite:///{root / 'bench.db'}")
        upgrade(db)
        with db.platform_transaction() as session:
            tenant = repo.create_tenant(session, "bench", Tier.SHARED)
        (root / "kms").mkdir()
        kms = LocalKms(root / "kms", load_or_create_master_key(root / "kms" / "master.key"))
        artifacts = ArtifactService(db, TenantKeyring(kms, BlobStore(root / "blobs")))
        artifact = artifacts.import_model(
            tenant, "bench-llama", [("config.json", config_json), ("model.safetensors", weights)]
        )
        del weights

        def plaintext() -> None:
            model.load_state_dict(load(plain.read_bytes()))

        def encrypted() -> None:
            files = dict(artifacts.load(tenant.id, artifact.id))
            model.load_state_dict(load(files["model.safetensors"]))

        def decrypt_only() -> None:
            artifacts.load(tenant.id, artifact.id)

        def sha256_only() -> None:
            hashlib.sha256(plain.read_bytes()).digest()

        plaintext(), encrypted()  # warm the page cache and the allocator
        p_times, e_times = [], []
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            p_times += median_s(plaintext, 1)
            e_times += median_s(encrypted, 1)
        d_times = median_s(decrypt_only, args.runs)
        h_times = median_s(sha256_only, args.runs)
        db.dispose()

    size = plain.stat().st_size if plain.exists() else sum(f.bytes for f in artifact.files)
    p, e = statistics.median(p_times), statistics.median(e_times)
    ratio = e / p
    print(f"model: {args.layers} layers, {size / 1e6:.0f} MB safetensors (float32)")
    print(f"plaintext load   median of {args.runs}: {p * 1000:8.1f} ms")
    print(f"encrypted load   median of {args.runs}: {e * 1000:8.1f} ms")
    print(f"  of which read+decrypt+SHA-256:   {statistics.median(d_times) * 1000:8.1f} ms")
    print(f"  (read+SHA-256 alone:             {statistics.median(h_times) * 1000:8.1f} ms)")
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"ratio encrypted/plaintext: {ratio:.3f}x ({verdict} the <= {TARGET}x target)")


if __name__ == "__main__":
    main()
