"""What a LoRA adapter's files must be for the gateway to store them and a worker to apply them.

An adapter is the two files `peft` saves: ``adapter_config.json`` and
``adapter_model.safetensors``.  It comes out of a training sandbox that ran a
tenant's data through third-party code, so it is untrusted input, checked
once before it is stored (`store.artifacts.ArtifactService.import_adapter`)
and again by the worker that applies it (`lora`).  Nothing here imports torch.

- exactly those two flat names, each once, each within its size bound;
- the config is parsed (bounded, depth-checked) and reduced to a whitelist of
  LoRA settings (`check_config`): rank, alpha and target module names.  Every
  other key is dropped, ``base_model_name_or_path``, ``revision``,
  ``modules_to_save`` and the like included, so nothing in it can make
  anything load a path or fetch a remote model; what is stored is the
  canonical rewrite, not the bytes that came in;
- the weights are safetensors checked by `model_format.parse_header` (the
  parser the worker loads them with), holding only ``…lora_A.weight`` /
  ``…lora_B.weight`` tensors of the config's rank, in pairs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from . import model_format as fmt

ADAPTER_CONFIG: Final = "adapter_config.json"
ADAPTER_WEIGHTS: Final = "adapter_model.safetensors"
ADAPTER_FILES: Final = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
# With the adapter, a worker gets its base (`lora`): one frame naming a bundled model,
# or an imported model's files as frames named "base/<file>".
BASE_BUNDLED: Final = "base.bundled"
BASE_PREFIX: Final = "base/"
MAX_CONFIG_BYTES: Final = 64 << 10
MAX_WEIGHTS_BYTES: Final = 512 << 20  # rank 256 on every linear layer of a 1B model fits
MAX_LORA_RANK: Final = 256
MAX_ALPHA: Final = 4096
MAX_TARGETS: Final = 64
ALL_LINEAR: Final = "all-linear"
# One module name as peft matches it (a suffix of a dotted module path): no paths, no regex.
_TARGET: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# peft's saved keys: base_model.model.<module path>.lora_A.weight (or lora_B).
_TENSOR: Final = re.compile(
    r"base_model\.model\.((?:[A-Za-z0-9_]{1,64}\.){1,16})lora_([AB])\.weight"
)


class AdapterFormatError(ValueError):
    """The adapter's files are not an adapter Bulkhead applies; the message says how."""


def _number(values: Mapping[str, Any], name: str, lo: int, hi: int) -> int:
    value = values.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise AdapterFormatError(f"{name} must be an integer from {lo} to {hi}")
    return value


def _targets(value: object) -> list[str] | str:
    if value == ALL_LINEAR:
        return ALL_LINEAR
    if not isinstance(value, list) or not 0 < len(value) <= MAX_TARGETS:
        raise AdapterFormatError(f"target_modules must be 1 to {MAX_TARGETS} module names")
    if not all(isinstance(v, str) and _TARGET.fullmatch(v) for v in value):
        raise AdapterFormatError("target_modules must be plain module names")
    return sorted(set(value))


def check_config(data: bytes | bytearray) -> dict[str, Any]:
    """The whitelisted LoRA settings of an ``adapter_config.json`` (see the module docstring)."""
    try:
        values = fmt.load_json(data, max_bytes=MAX_CONFIG_BYTES)
    except fmt.ModelFormatError as exc:
        raise AdapterFormatError(f"{ADAPTER_CONFIG} is not usable: {exc}") from None
    if not isinstance(values, dict):
        raise AdapterFormatError(f"{ADAPTER_CONFIG} must be a JSON object")
    if values.get("peft_type", "LORA") != "LORA":
        raise AdapterFormatError("only LoRA adapters are served")
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": _number(values, "r", 1, MAX_LORA_RANK),
        "lora_alpha": _number(values, "lora_alpha", 1, MAX_ALPHA),
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": _targets(values.get("target_modules")),
    }


def canonical_config(config: Mapping[str, Any]) -> bytes:
    """The bytes stored for a checked config: sorted keys, nothing else."""
    return orjson.dumps(dict(config), option=orjson.OPT_SORT_KEYS)


def check_weights(data: bytes | bytearray, rank: int) -> int:
    """LoRA A/B tensors of rank `rank`, in pairs; returns how many tensors."""
    if len(data) > MAX_WEIGHTS_BYTES:
        raise AdapterFormatError(f"{ADAPTER_WEIGHTS} is larger than {MAX_WEIGHTS_BYTES} bytes")
    try:
        _, entries = fmt.parse_header(data)
    except fmt.ModelFormatError as exc:
        raise AdapterFormatError(f"{ADAPTER_WEIGHTS} is not valid safetensors: {exc}") from None
    halves: dict[str, set[str]] = {}
    for entry in entries:
        match = _TENSOR.fullmatch(entry.name)
        if match is None:
            raise AdapterFormatError(f"tensor {entry.name[:60]!r} is not a LoRA A or B weight")
        module, half = match.groups()
        if entry.dtype not in ("F32", "F16", "BF16") or len(entry.shape) != 2:
            raise AdapterFormatError(f"tensor {entry.name[:60]!r} is not a float matrix")
        if (entry.shape[0] if half == "A" else entry.shape[1]) != rank:
            raise AdapterFormatError(f"tensor {entry.name[:60]!r} is not of rank {rank}")
        halves.setdefault(module, set()).add(half)
    if not halves or any(h != {"A", "B"} for h in halves.values()):
        raise AdapterFormatError("the LoRA weights must come in A and B pairs")
    return len(entries)


def check_adapter(files: Sequence[tuple[str, bytes | bytearray]]) -> list[tuple[str, bytes]]:
    """The adapter's two files, checked; the config rewritten to its whitelist (canonical)."""
    names = [name for name, _ in files]
    if sorted(names) != sorted(ADAPTER_FILES):
        shown = ", ".join(repr(n[:60]) for n in names[:4])
        wanted = " and ".join(ADAPTER_FILES)
        raise AdapterFormatError(f"an adapter is exactly {wanted}, not {shown}")
    found = dict(files)
    config = check_config(found[ADAPTER_CONFIG])
    check_weights(found[ADAPTER_WEIGHTS], config["r"])
    weights = bytes(found[ADAPTER_WEIGHTS])
    return [(ADAPTER_CONFIG, canonical_config(config)), (ADAPTER_WEIGHTS, weights)]
