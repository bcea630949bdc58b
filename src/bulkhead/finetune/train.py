"""LoRA training with `peft`, in memory: the code the sandboxed runner process executes.

The base model is the bundled SmolLM2-135M (read where pip put it, as its worker does) or an
imported hf-causal model built from in-memory files.  Each example is tokenized the way the
serving worker renders a chat (the model's chat template, or ``role: content`` lines for an
imported model without one), and only the assistant's tokens, with the end token that closes
each of its turns, carry a label: the loss is on what the model should say, never on what the
user said.  The adapter comes back as bytes (``adapter_config.json`` and
``adapter_model.safetensors``, the files `peft` saves), never as a file.

Everything here runs on the CPU, in one thread, deterministically for a given seed.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import torch

from bulkhead.finetune.contract import BASE_LEARNING_RATE, BUNDLED_BASES, Hyper
from bulkhead.runtime.worker import lora
from bulkhead.runtime.worker.adapter_format import ADAPTER_CONFIG, ADAPTER_WEIGHTS

IGNORE: Final = -100
_MARK: Final = re.compile("\ue000([0-9]+)\ue001")


class NanLoss(Exception):
    """The training loss is not a finite number."""


class NoTrainableTokens(Exception):
    """After truncation, no example has an assistant token left to learn from."""


@dataclass(slots=True)
class Base:
    """A loaded base model and what is needed to tokenize chats for it."""

    name: str
    model: Any
    tokenizer: Any  # a `tokenizers.Tokenizer`
    end_ids: frozenset[int]
    end_id: int
    pad_id: int
    hf_tokenizer: Any = None  # with a chat template (bundled models)


def load_base(base: str | Mapping[str, bytes]) -> Base:
    """The bundled base named `base`, or an imported model from its in-memory files."""
    if isinstance(base, str):
        if base not in BUNDLED_BASES:
            raise ValueError(f"unknown bundled base {base!r}")
        from bulkhead.runtime.worker import bundled

        hf_tokenizer, model = bundled.load(bundled.locate(base))
        tokenizer = hf_tokenizer.backend_tokenizer
        end = hf_tokenizer.eos_token_id
        others = {tokenizer.token_to_id("<|endoftext|>")} - {None}
        pad = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else end
        return Base(base, model, tokenizer, frozenset({end, *others}), end, pad, hf_tokenizer)
    from tokenizers import Tokenizer

    from bulkhead.runtime.worker import hf_causal

    if "config.json" not in base or "tokenizer.json" not in base:
        raise hf_causal.ModelFilesError("config.json and tokenizer.json are required")
    tokenizer = Tokenizer.from_str(base["tokenizer.json"].decode("utf-8"))
    model = hf_causal.build_model(base["config.json"], hf_causal.load_state(base))
    model = model.to(torch.float32)  # LoRA steps in float32 on the CPU
    end = hf_causal._end_id(model.config, tokenizer)
    return Base("<imported>", model, tokenizer, frozenset({end}), end, end)


def _encode(base: Base, text: str, *, controls: bool) -> list[int]:
    """Token ids of `text`; control-token strings count only with `controls` (as served)."""
    base.tokenizer.encode_special_tokens = not controls
    try:
        ids: list[int] = base.tokenizer.encode(text, add_special_tokens=False).ids
    finally:
        base.tokenizer.encode_special_tokens = True
    return ids


def _segments(base: Base, messages: Sequence[Mapping[str, Any]]) -> list[tuple[list[int], bool]]:
    """The chat as (token ids, learn from them) pieces, in order."""
    learn = [m["role"] == "assistant" and m.get("weight", 1) == 1 for m in messages]
    if base.hf_tokenizer is None:
        out: list[tuple[list[int], bool]] = []
        for message, wanted in zip(messages, learn, strict=True):
            role, content = message["role"], message["content"]
            if role == "assistant":
                out.append((_encode(base, "assistant:", controls=False), False))
                out.append(([*_encode(base, content, controls=False), base.end_id], wanted))
                out.append((_encode(base, "\n", controls=False), False))
            else:
                out.append((_encode(base, f"{role}: {content}\n", controls=False), False))
        return out
    # The chat template with each content swapped for a marker, as the bundled worker does.
    marked = [{"role": m["role"], "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)]
    rendered = base.hf_tokenizer.apply_chat_template(marked, tokenize=False)
    pieces = _MARK.split(rendered)
    out = []
    after_learned = False
    for index, piece in enumerate(pieces):
        if index % 2:  # re.split alternates: template text, a message's number, text, ...
            number = int(piece)
            out.append((_encode(base, messages[number]["content"], controls=False), learn[number]))
            after_learned = learn[number]
        elif piece:
            ids = _encode(base, piece, controls=True)
            if after_learned and ids and ids[0] in base.end_ids:
                out.append(([ids[0]], True))  # the end token that closes the answer
                ids = ids[1:]
            out.append((ids, False))
            after_learned = False
    return out


def encode_example(
    base: Base, example: Mapping[str, Any], max_seq_len: int
) -> tuple[list[int], list[int]]:
    """Input ids and labels (`IGNORE` where no loss is taken), cut to `max_seq_len`."""
    ids: list[int] = []
    labels: list[int] = []
    for piece, learned in _segments(base, example["messages"]):
        ids += piece
        labels += piece if learned else [IGNORE] * len(piece)
    return ids[:max_seq_len], labels[:max_seq_len]


def batches(
    encoded: Sequence[tuple[list[int], list[int]]], size: int, pad_id: int
) -> list[dict[str, torch.Tensor]]:
    """Padded batches (right padding, masked out) of consecutive examples."""
    out = []
    for start in range(0, len(encoded), size):
        chunk = encoded[start : start + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = [i + [pad_id] * (width - len(i)) for i, _ in chunk]
        labels = [lab + [IGNORE] * (width - len(lab)) for _, lab in chunk]
        mask = [[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk]
        out.append(
            {
                "input_ids": torch.tensor(ids),
                "labels": torch.tensor(labels),
                "attention_mask": torch.tensor(mask),
            }
        )
    return out


def add_lora(model: Any, hyper: Hyper) -> Any:
    """Wrap `model` with fresh LoRA adapters of rank `hyper.lora_rank` (base frozen)."""
    from peft import LoraConfig, get_peft_model

    def config(targets: Any) -> LoraConfig:
        return LoraConfig(
            r=hyper.lora_rank,
            lora_alpha=2 * hyper.lora_rank,
            lora_dropout=0.0,
            target_modules=targets,
            task_type="CAUSAL_LM",
        )

    try:
        return get_peft_model(model, config(None))  # peft's default modules for the model type
    except ValueError:
        return get_peft_model(model, config("all-linear"))


def mean_loss(model: Any, data: Sequence[dict[str, torch.Tensor]]) -> float:
    """The mean loss per labelled token over `data`, without gradients."""
    model.train(False)
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in data:
            tokens = int((batch["labels"][:, 1:] != IGNORE).sum())
            if tokens:
                total += float(model(**batch).loss) * tokens
                count += tokens
    return total / count if count else math.nan


Emit = Callable[[dict[str, Any]], None]


@dataclass(slots=True)
class Trained:
    adapter: list[tuple[str, bytes]]
    tokens: int


def train(
    base: Base,
    training: Sequence[Mapping[str, Any]],
    validation: Sequence[Mapping[str, Any]],
    hyper: Hyper,
    emit: Emit,
    *,
    nan_at_step: int | None = None,
) -> Trained:
    """Train LoRA adapters on `base`; `emit` gets each metrics event.

    Raises `NanLoss` on a loss that is not finite (`nan_at_step` injects one, for tests) and
    `NoTrainableTokens` when truncation leaves nothing to learn from.
    """
    random.seed(hyper.seed)
    torch.manual_seed(hyper.seed)
    train_set = [encode_example(base, e, hyper.max_seq_len) for e in training]
    train_set = [e for e in train_set if any(lab != IGNORE for lab in e[1][1:])]
    if not train_set:
        raise NoTrainableTokens("no assistant tokens are left within max_seq_len")
    valid = batches(
        [encode_example(base, e, hyper.max_seq_len) for e in validation],
        hyper.batch_size,
        base.pad_id,
    )
    model = add_lora(base.model, hyper)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=BASE_LEARNING_RATE * hyper.learning_rate_multiplier)
    emit({"kind": "metrics", "step": 0, "valid_loss": _loss(mean_loss(model, valid))})
    step, tokens = 0, 0
    started = time.monotonic()
    for _epoch in range(hyper.epochs):
        random.shuffle(train_set)
        for batch in batches(train_set, hyper.batch_size, base.pad_id):
            model.train(True)
            loss = model(**batch).loss
            if nan_at_step is not None and step + 1 >= nan_at_step:
                loss = loss * math.nan
            if not math.isfinite(loss.item()):
                raise NanLoss(f"the training loss is not finite at step {step + 1}")
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens += int(batch["attention_mask"].sum())
            emit({"kind": "metrics", "step": step, "train_loss": loss.item(), "tokens": tokens})
        valid_loss = mean_loss(model, valid)
        rate = tokens / max(time.monotonic() - started, 1e-9)
        text = f"epoch {_epoch + 1} of {hyper.epochs} done, {rate:.0f} tokens/s"
        emit(
            {
                "kind": "checkpoint",
                "step": step,
                "valid_loss": _loss(valid_loss),
                "tokens": tokens,
                "text": text,
            }
        )
    return Trained(adapter_files(model), tokens)


def _loss(value: float) -> float | None:
    return value if math.isfinite(value) else None


def adapter_files(model: Any) -> list[tuple[str, bytes]]:
    """The adapter as the two files `peft` saves, in memory."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save

    state = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    config = model.peft_config["default"].to_dict()
    config = {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}
    text = json.dumps(config, sort_keys=True, default=str).encode()
    return [(ADAPTER_CONFIG, text), (ADAPTER_WEIGHTS, save(state))]


def apply_adapter(model: Any, files: Mapping[str, bytes]) -> Any:
    """`model` with the adapter of `adapter_files` loaded: the serving worker's own code."""
    return lora.apply_adapter(model, files)
