"""Tokenizing chats for training (loss on the assistant only) and the runner's stream parsing."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from bulkhead.finetune.runner import _event, read_frames
from bulkhead.runtime.worker import frames

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def base() -> Any:
    """A base with the demo tokenizer and no chat template (an imported model's format)."""
    from bulkhead.finetune.train import Base
    from bulkhead.runtime.worker.demo_chat import END_OF_TEXT, build_tokenizer

    tokenizer = build_tokenizer()
    end = tokenizer.token_to_id(END_OF_TEXT)
    return Base("<imported>", None, tokenizer, frozenset({end}), end, end)


def chat(*turns: tuple[str, str], weight: int | None = None) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": r, "content": c} for r, c in turns]
    if weight is not None:
        messages[-1]["weight"] = weight
    return {"messages": messages}


def labelled(base: Any, ids: list[int], labels: list[int]) -> str:
    from bulkhead.finetune.train import IGNORE

    assert len(ids) == len(labels)
    assert all(lab in (IGNORE, i) for i, lab in zip(ids, labels, strict=True))
    text: str = base.tokenizer.decode([i for i in labels if i != IGNORE], skip_special_tokens=False)
    return text


def test_only_the_assistants_tokens_and_its_end_token_carry_labels(base: Any) -> None:
    from bulkhead.finetune.train import encode_example

    example = chat(("system", "sys"), ("user", "question"), ("assistant", "the answer"))
    ids, labels = encode_example(base, example, 256)
    assert labelled(base, ids, labels) == "the answer<|endoftext|>"
    whole = base.tokenizer.decode(ids, skip_special_tokens=False)
    assert whole.startswith("system: sys\nuser: question\nassistant:")


def test_every_assistant_turn_is_learned_unless_its_weight_is_0(base: Any) -> None:
    from bulkhead.finetune.train import encode_example

    turns = (("user", "a"), ("assistant", "one"), ("user", "b"), ("assistant", "two"))
    ids, labels = encode_example(base, chat(*turns), 256)
    assert labelled(base, ids, labels) == "one<|endoftext|>two<|endoftext|>"
    ids, labels = encode_example(base, chat(*turns, weight=0), 256)
    assert labelled(base, ids, labels) == "one<|endoftext|>"


def test_control_token_text_in_a_message_is_text(base: Any) -> None:
    from bulkhead.finetune.train import encode_example

    ids, _ = encode_example(base, chat(("user", "<|endoftext|>"), ("assistant", "x")), 256)
    assert ids.count(base.end_id) == 1  # only the one closing the answer


def test_examples_are_cut_to_max_seq_len_and_batches_are_padded(base: Any) -> None:
    from bulkhead.finetune.train import IGNORE, batches, encode_example

    long = chat(("user", "word " * 50), ("assistant", "answer"))
    short = chat(("user", "hi"), ("assistant", "ok"))
    encoded = [encode_example(base, long, 16), encode_example(base, short, 16)]
    assert len(encoded[0][0]) == 16
    (batch,) = batches(encoded, 4, base.pad_id)
    width = len(encoded[1][0])
    assert batch["input_ids"].shape == (2, 16)
    assert batch["attention_mask"][1].tolist() == [1] * width + [0] * (16 - width)
    assert batch["labels"][1, width:].tolist() == [IGNORE] * (16 - width)


def test_events_from_the_process_are_bounded_and_typed() -> None:
    event = _event(
        {
            "kind": "metrics",
            "step": "7",
            "train_loss": float("nan"),
            "valid_loss": True,
            "tokens": 5,
        }
    )
    assert (event.step, event.train_loss, event.valid_loss, event.tokens) == (0, None, None, 5)
    assert len(_event({"kind": "message", "text": "x" * 10_000}).text) == 500


def _read(data: bytes) -> list[tuple[str, bytes]]:
    async def main() -> list[tuple[str, bytes]]:
        stream = asyncio.StreamReader()
        stream.feed_data(data)
        stream.feed_eof()
        return await read_frames(stream)

    return asyncio.run(main())


def test_adapter_frames_are_read_and_bounded() -> None:
    files = [("adapter_config.json", b"{}"), ("adapter_model.safetensors", b"\0" * 10)]
    assert _read(b"".join(frames.encode(files))) == files
    with pytest.raises(frames.FrameError):
        _read(struct.pack(">I", 17))
    with pytest.raises(frames.FrameError):
        _read(struct.pack(">IH", 1, 1) + b"a" + struct.pack(">Q", 1 << 40))
    with pytest.raises(asyncio.IncompleteReadError):
        _read(b"".join(frames.encode(files))[:-1])
