"""Model load time, encrypted artifact vs plaintext file.

    python bench/model_load_bench.py [--layers 4] [--runs 5]

Builds a random LLaMA (about 160 MB of float32 safetensors by default),
stores it once as a plaintext file and once as an imported, encrypted
artifact (`ArtifactService`: streaming AEAD under the tenant's KEK, SHA-256
recorded), then takes the median of `--runs` interleaved loads of each:

- plaintext, two ways: `safetensors.torch.load_file` (the usual loader,
  memory-mapped) and reading the file then `tensors_from_buffer` (the
  worker's zero-copy parser); each followed by `load_state_dict`.  The
  faster one is the baseline.
- encrypted: `ArtifactService.load` (read the blob, decrypt it into one
  buffer with `decrypt_stream_into` while another thread checks the
  SHA-256), then `tensors_from_buffer` and `load_state_dict`.

Target (issue): encrypted load <= 1.15x plaintext.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from safetensors.torch import load_file, save  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from bulkhead.crypto import LocalKms, load_or_create_master_key  # noqa: E402
from bulkhead.domain import Tier  # noqa: E402
from bulkhead.runtime.worker.hf_causal import tensors_from_buffer  # noqa: E402
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

        def plaintext_mmap() -> None:
            model.load_state_dict(load_file(plain))

        def plaintext_read() -> None:
            model.load_state_dict(tensors_from_buffer(plain.read_bytes()))

        def encrypted() -> None:
            files = dict(artifacts.load(tenant.id, artifact.id))
            model.load_state_dict(tensors_from_buffer(files["model.safetensors"]))

        def decrypt_only() -> None:
            artifacts.load(tenant.id, artifact.id)

        def sha256_only() -> None:
            hashlib.sha256(plain.read_bytes()).digest()

        plaintext_mmap(), plaintext_read(), encrypted()  # warm the page cache and allocator
        m_times: list[float] = []
        r_times: list[float] = []
        e_times: list[float] = []
        for _ in range(args.runs):  # interleaved, so drift hits all alike
            m_times += median_s(plaintext_mmap, 1)
            r_times += median_s(plaintext_read, 1)
            e_times += median_s(encrypted, 1)
        d_times = median_s(decrypt_only, args.runs)
        h_times = median_s(sha256_only, args.runs)
        cold: dict[str, list[float]] = {"mmap": [], "read": [], "encrypted": []}
        if can_drop_caches():
            for _ in range(args.runs):  # a worker starting on a fresh node reads from disk
                for name, fn in (
                    ("mmap", plaintext_mmap),
                    ("read", plaintext_read),
                    ("encrypted", encrypted),
                ):
                    drop_caches()
                    cold[name] += median_s(fn, 1)
        db.dispose()

    size = plain.stat().st_size if plain.exists() else sum(f.bytes for f in artifact.files)
    m, r = statistics.median(m_times), statistics.median(r_times)
    p, e = min(m, r), statistics.median(e_times)
    ratio = e / p
    print(f"model: {args.layers} layers, {size / 1e6:.0f} MB safetensors (float32)")
    print(f"plaintext load_file (mmap)   median of {args.runs}: {m * 1000:8.1f} ms")
    print(f"plaintext read + zero-copy   median of {args.runs}: {r * 1000:8.1f} ms")
    print(f"encrypted load               median of {args.runs}: {e * 1000:8.1f} ms")
    print(f"  of which read+decrypt+SHA-256:   {statistics.median(d_times) * 1000:8.1f} ms")
    print(f"  (read+SHA-256 alone:             {statistics.median(h_times) * 1000:8.1f} ms)")
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"warm page cache: encrypted/plaintext {ratio:.3f}x ({verdict} the <= {TARGET}x target)")
    if not cold["mmap"]:
        print("cold cache: not measured (dropping the page cache needs root)")
        return
    cm, cr, ce = (statistics.median(cold[k]) for k in ("mmap", "read", "encrypted"))
    cold_ratio = ce / min(cm, cr)
    print(f"cold cache: load_file {cm * 1000:.1f} ms, read {cr * 1000:.1f} ms, ", end="")
    print(f"encrypted {ce * 1000:.1f} ms (medians of {args.runs})")
    verdict = "meets" if cold_ratio <= TARGET else "MISSES"
    print(f"cold cache: encrypted/plaintext {cold_ratio:.3f}x ({verdict} the <= {TARGET}x target)")


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


if __name__ == "__main__":
    main()
