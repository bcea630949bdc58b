"""An imported Hugging Face-format causal LM, built from weights held in memory.

The supervisor decrypts the tenant's model files and hands them over on stdin
(see `frames`); nothing here opens a file.  The configuration comes from
``config.json`` bytes, the weights from ``*.safetensors`` bytes (never a
pickle), and the tokenizer from ``tokenizer.json`` bytes.  Generation is the
demo model's code path (`CausalChatModel`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping
from typing import Any, Final

import torch
from tokenizers import Tokenizer

from . import model_format
from .backends import force_offline_mode
from .demo_chat import CausalChatModel

DEFAULT_CONTEXT_WINDOW: Final = 2048


class ModelFilesError(Exception):
    """The files handed to the worker do not make a loadable model."""


def _skip_random_init() -> contextlib.AbstractContextManager[Any]:
    """Skip the random initialisation that the loaded weights overwrite anyway."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # an older transformers: initialise, then overwrite
        return contextlib.nullcontext()
    manager: contextlib.AbstractContextManager[Any] = no_init_weights()
    return manager


_DTYPES: Final = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def tensors_from_buffer(data: bytes | bytearray) -> dict[str, torch.Tensor]:
    """The tensors of one safetensors file, as views into `data` (no copy).

    The header is parsed and checked by `model_format.parse_header`, the same
    parser the gateway refused bad files with at import: every range lies in
    the buffer, holds exactly its shape, and the ranges tile the buffer.
    """
    try:
        base, entries = model_format.parse_header(data)
    except model_format.ModelFormatError as exc:
        raise ModelFilesError(f"a safetensors file is not loadable: {exc}") from None
    out = {}
    for entry in entries:
        dtype = _DTYPES[entry.dtype]
        if entry.count == 0:
            out[entry.name] = torch.empty(entry.shape, dtype=dtype)
            continue
        with warnings.catch_warnings():  # read-only bytes: the weights are copied on load
            warnings.simplefilter("ignore", UserWarning)
            flat = torch.frombuffer(data, dtype=dtype, count=entry.count, offset=base + entry.begin)
        out[entry.name] = flat.reshape(entry.shape)
    return out


def load_state(files: Mapping[str, bytes | bytearray]) -> dict[str, torch.Tensor]:
    """Every tensor of every ``*.safetensors`` file, as views into the given buffers."""
    state: dict[str, torch.Tensor] = {}
    for name in sorted(files):
        if name.endswith(".safetensors"):
            for key, tensor in tensors_from_buffer(files[name]).items():
                if key in state:
                    raise ModelFilesError(f"tensor {key!r} appears in two weight files")
                state[key] = tensor
    if not state:
        raise ModelFilesError("no safetensors weights")
    return state


def build_model(config_json: bytes, state: dict[str, torch.Tensor]) -> Any:
    """Instantiate the architecture from the config and load exactly the given weights."""
    force_offline_mode()
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        loaded = model_format.load_json(config_json, max_bytes=model_format.MAX_CONFIG_BYTES)
        values = dict(model_format.check_config(loaded))
    except model_format.ModelFormatError as exc:
        raise ModelFilesError(f"config.json is not usable: {exc}") from None
    model_type = str(values.pop("model_type"))
    values.pop("auto_map", None)  # Remote code is never run.
    config = AutoConfig.for_model(model_type, **values)
    with _skip_random_init():
        model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            config, torch_dtype=_dtype(state)
        )
    result = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    if getattr(config, "tie_word_embeddings", False):
        tied.add("lm_head.weight")
        model.tie_weights()
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise ModelFilesError(
            f"the weights do not fit the config: {len(missing)} missing, "
            f"{len(result.unexpected_keys)} unexpected tensors"
        )
    model.train(False)  # Inference only: no dropout.
    return model


def assigned_device() -> torch.device | None:
    """The CUDA device this worker is pinned to, or None: it runs on the CPU.

    The supervisor hides every GPU (``CUDA_VISIBLE_DEVICES=""``) unless the worker's
    GPU assignment names one, so a visible device is the assigned one.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return None


def to_assigned_device(model: Any, *, half: bool = False) -> Any:
    """Move `model` to the worker's GPU, if it has one; with `half`, in 16 bits there.

    On the CPU the model stays as it is (float32 is what CPUs compute fastest).
    """
    device = assigned_device()
    if device is None:
        return model
    if half and model.dtype == torch.float32:
        bf16 = torch.cuda.is_bf16_supported()
        model = model.to(dtype=torch.bfloat16 if bf16 else torch.float16)
    return model.to(device)


def _dtype(state: Mapping[str, torch.Tensor]) -> torch.dtype:
    floating = [t.dtype for t in state.values() if t.is_floating_point()]
    return max(set(floating), key=floating.count) if floating else torch.float32


def _end_id(config: Any, tokenizer: Tokenizer) -> int:
    eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    if isinstance(eos, int):
        return eos
    raise ModelFilesError("config.json names no eos_token_id")


class ImportedChatModel(CausalChatModel):
    """A tenant's imported model, built from in-memory files."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        if "config.json" not in files or "tokenizer.json" not in files:
            raise ModelFilesError("config.json and tokenizer.json are required")
        tokenizer = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
        # Special-token strings typed by users are ordinary text, as in the demo model.
        tokenizer.encode_special_tokens = True
        model = to_assigned_device(build_model(files["config.json"], load_state(files)))
        context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        super().__init__(
            tokenizer,
            model,
            _end_id(model.config, tokenizer),
            context_window=context or DEFAULT_CONTEXT_WINDOW,
        )
