"""A small imported model, for the tests that need an artifact of a tenant's own.

`model_files` is the smallest directory import accepts (a config, one tensor in
safetensors, a byte-level tokenizer); `import_model` imports it through the real
CLI as the platform admin and answers the artifact id.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save

from bulkhead.runtime.worker.demo_chat import build_tokenizer
from tests.cli.test_cli import as_admin
from tests.support.gateway import GatewayThread


def model_files() -> dict[str, bytes]:
    weights = np.arange(256, dtype=np.float32).reshape(16, 16)
    return {
        "config.json": json.dumps({"model_type": "llama"}).encode(),
        "model.safetensors": save({"model.embed_tokens.weight": weights}),
        "tokenizer.json": build_tokenizer().to_str().encode(),
    }


def import_model(gateway: GatewayThread, tenant: str, model: str) -> str:
    """Import `model_files()` as `tenant`'s model `model`; its artifact id."""
    with tempfile.TemporaryDirectory() as where:
        directory = Path(where) / "model"
        directory.mkdir()
        for name, data in model_files().items():
            (directory / name).write_bytes(data)
        result = as_admin(gateway, Path(where), "model", "import", model, str(directory),
                          "--tenant", tenant, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["id"])
