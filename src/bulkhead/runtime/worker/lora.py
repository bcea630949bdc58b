"""A fine-tuned model served as base + LoRA adapter, both from memory (worker kind hf-causal-lora).

The supervisor writes the adapter's two files (`adapter_format.ADAPTER_FILES`,
decrypted and SHA-256-checked in the gateway) on the worker's stdin, and with
them the base: either one frame `BASE_BUNDLED` naming a bundled model (found
by `bundled.locate`, as its own worker does) or an imported model's files as
frames named ``base/<file>``.  Nothing names a path.  The base is loaded as its
own worker would load it, the adapter checked again (`adapter_format`), put on
with `peft` and merged into the weights, so generation is the base's code
path at the base's speed.  The training runner uses `apply_adapter` too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import adapter_format
from .adapter_format import (
    ADAPTER_CONFIG,
    ADAPTER_FILES,
    ADAPTER_WEIGHTS,
    BASE_BUNDLED,
    BASE_PREFIX,
)
from .demo_chat import CausalChatModel
from .hf_causal import ModelFilesError, tensors_from_buffer


def apply_adapter(
    model: Any, files: Mapping[str, bytes | bytearray], *, merge: bool = False
) -> Any:
    """`model` with the adapter of `files` on it; with `merge`, folded into its weights."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    try:
        config = adapter_format.check_config(files[ADAPTER_CONFIG])
        adapter_format.check_weights(files[ADAPTER_WEIGHTS], config["r"])
    except (KeyError, adapter_format.AdapterFormatError) as exc:
        raise ModelFilesError(f"the adapter is not usable: {exc}") from None
    lora = LoraConfig(
        r=config["r"],
        lora_alpha=config["lora_alpha"],
        lora_dropout=0.0,
        target_modules=config["target_modules"],
        task_type="CAUSAL_LM",
    )
    tuned: Any
    try:
        tuned = get_peft_model(model, lora)
    except ValueError as exc:  # a target module the base does not have
        raise ModelFilesError(f"the adapter does not fit the base model: {exc}") from None
    result = set_peft_model_state_dict(tuned, tensors_from_buffer(files[ADAPTER_WEIGHTS]))
    if getattr(result, "unexpected_keys", None):
        raise ModelFilesError("the adapter does not fit the base model")
    if merge:
        tuned = tuned.merge_and_unload()
    tuned.train(False)
    return tuned


def split(files: Sequence[tuple[str, bytes]]) -> tuple[str | dict[str, bytes], dict[str, bytes]]:
    """(the bundled base's kind or the imported base's files, the adapter's files)."""
    base: dict[str, bytes] = {}
    adapter: dict[str, bytes] = {}
    bundled: str | None = None
    for name, data in files:
        if name == BASE_BUNDLED:
            bundled = bytes(data).decode("ascii", errors="replace")
        elif name.startswith(BASE_PREFIX):
            base[name.removeprefix(BASE_PREFIX)] = data
        elif name in ADAPTER_FILES:
            adapter[name] = data
        else:
            raise ModelFilesError(f"unexpected file {name[:60]!r} for a fine-tuned model")
    if (bundled is None) == (not base):
        raise ModelFilesError("a fine-tuned model needs exactly one base")
    return (bundled if bundled is not None else base), adapter


def load_chat_model(files: Sequence[tuple[str, bytes]]) -> CausalChatModel:
    """The base model with the adapter merged into it, ready for the chat routes."""
    base, adapter = split(files)
    chat: CausalChatModel
    if isinstance(base, str):
        from .bundled import BUNDLED, BundledChatModel

        if base not in BUNDLED:
            raise ModelFilesError(f"no bundled model {base[:60]!r}")
        chat = BundledChatModel(base)
    else:
        from .hf_causal import ImportedChatModel

        chat = ImportedChatModel(base)
    chat.replace_model(apply_adapter(chat.model, adapter, merge=True))
    return chat
