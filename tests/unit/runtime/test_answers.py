# ruff: noqa: RUF001 - the Chinese sample keeps its full-width punctuation.
"""How large an answer may be: every honest answer to a call fits its bound, and the bound
grows with what the call asked for, not with what the server chose to send."""

from __future__ import annotations

import base64
import json
import random
import struct
from functools import cache
from typing import Any

import pytest
import tiktoken

from bulkhead.limits.tokens import load_o200k
from bulkhead.runtime.answers import (
    EMBEDDING_DIMENSIONS,
    FRAME_BYTES,
    TOKEN_BYTES,
    answer_limit,
)

CHAT, COMPLETIONS, EMBEDDINGS = "/chat/completions", "/completions", "/embeddings"
TEXTS = {
    "english": "The refund was issued on 12 March; expect it within five working days. ",
    "chinese": "请帮我总结下面这段客户反馈，列出三个要点，然后写一封礼貌的回复。",
    "emoji": "🙂🚀🎉👍🏽🧑‍💻 ",
    "code": '    def f(x):\n        return {"a": [x, x * 2]}  # ok\n\n',
    "thai": "สวัสดีครับ ขอบคุณสำหรับคำถามของคุณ ",
    "controls": "\x01\x02\t\x1b[31m\u2028",
    "longest tokens": "=" * 4096,
}


@cache
def o200k() -> tiktoken.Encoding:
    return load_o200k()


def tokens_of(sample: str, count: int) -> list[int]:
    """`count` tokens of the sample, repeated as needed."""
    one = o200k().encode_ordinary(sample)
    return (one * (count // len(one) + 1))[:count]


def dumps(value: Any) -> bytes:
    """JSON as the most expansive servers write it: every non-ASCII character escaped."""
    return json.dumps(value, ensure_ascii=True).encode()


def chat_answer(texts: list[str], logprobs: list[list[Any]] | None = None) -> bytes:
    choices = []
    for i, text in enumerate(texts):
        message = {"role": "assistant", "content": text, "refusal": None, "tool_calls": []}
        choice: dict[str, Any] = {"index": i, "message": message, "finish_reason": "length"}
        choice["logprobs"] = {"content": logprobs[i]} if logprobs is not None else None
        choices.append(choice)
    usage = {"prompt_tokens": 12, "completion_tokens": 4096, "total_tokens": 4108}
    return dumps(
        {
            "id": "chatcmpl-" + "a" * 32,
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "some/model-name-of-a-reasonable-length",
            "system_fingerprint": "fp_" + "0" * 10,
            "choices": choices,
            "usage": usage,
        }
    )


def limit(path: str, call: dict[str, Any], sent: int = 100) -> int:
    found = answer_limit(path, call, sent)
    assert found is not None
    return found


def entry(token: int, rng: random.Random) -> dict[str, Any]:
    raw = o200k().decode_single_token_bytes(token)
    text = raw.decode("utf-8", "replace")
    return {"token": text, "logprob": -rng.random() * 30, "bytes": list(raw)}


@pytest.mark.parametrize("language", sorted(TEXTS))
def test_a_whole_answer_of_any_language_fits(language: str) -> None:
    text = o200k().decode(tokens_of(TEXTS[language], 4096))
    assert len(chat_answer([text])) <= limit(CHAT, {"max_tokens": 4096})


def test_every_o200k_token_fits_its_share_escaped() -> None:
    for token in range(199_998):
        raw = o200k().decode_single_token_bytes(token)
        assert len(dumps(raw.decode("utf-8", "replace"))) - 2 <= TOKEN_BYTES, token


def test_n_choices_fit() -> None:
    text = o200k().decode(tokens_of(TEXTS["chinese"], 512))
    answer = chat_answer([text] * 8)
    assert len(answer) <= limit(CHAT, {"max_tokens": 512, "n": 8})


def test_logprobs_with_twenty_alternatives_fit() -> None:
    rng = random.Random(7)
    tokens = tokens_of(TEXTS["english"], 1024)
    content = []
    for token in tokens:
        e = entry(token, rng)
        e["top_logprobs"] = [entry(rng.randrange(199_998), rng) for _ in range(20)]
        content.append(e)
    answer = chat_answer([o200k().decode(tokens)], [content])
    call = {"max_tokens": 1024, "logprobs": True, "top_logprobs": 20}
    assert len(answer) <= limit(CHAT, call)
    assert len(answer) > limit(CHAT, {"max_tokens": 1024})


def test_a_batch_of_completions_and_an_echo_fit() -> None:
    prompt = "Say something about the sea. " * 2_000
    text = o200k().decode(tokens_of(TEXTS["english"], 256))
    choices = [{"index": i, "text": prompt + text, "finish_reason": "length"} for i in range(6)]
    answer = dumps({"object": "text_completion", "choices": choices})
    call: dict[str, Any] = {"max_tokens": 256, "n": 2, "prompt": [prompt] * 3, "echo": True}
    assert len(answer) <= limit(COMPLETIONS, call, len(dumps(call)))
    del call["echo"]
    assert len(answer) > limit(COMPLETIONS, call, len(dumps(call)))


@pytest.mark.parametrize("encoding", ["float", "base64"])
@pytest.mark.parametrize("dimensions", [None, 256, 3072, EMBEDDING_DIMENSIONS])
def test_embeddings_fit(encoding: str, dimensions: int | None) -> None:
    rng = random.Random(3)
    size = dimensions or EMBEDDING_DIMENSIONS
    data = []
    for i in range(4):
        vector = [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 0) for _ in range(size)]
        packed = base64.b64encode(struct.pack(f"<{size}d", *vector)).decode()
        data.append(
            {
                "object": "embedding",
                "index": i,
                "embedding": vector if encoding == "float" else packed,
            }
        )
    answer = dumps({"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 8}})
    call = {"input": ["a", "b", "c", "d"], "encoding_format": encoding}
    if dimensions is not None:
        call["dimensions"] = dimensions
    assert len(answer) <= limit(EMBEDDINGS, call)


def test_the_bound_follows_the_call_not_the_server() -> None:
    two_tokens = answer_limit(CHAT, {"max_tokens": 2}, 50)
    assert two_tokens is not None and two_tokens < FRAME_BYTES + 2048
    assert answer_limit(CHAT, {"max_completion_tokens": 2}, 50) == two_tokens
    assert answer_limit(EMBEDDINGS, {"input": "one"}, 50) == answer_limit(
        EMBEDDINGS, {"input": [1, 2, 3]}, 50
    )
    # Without a length limit (only the platform's own callers), the absolute bound holds alone.
    assert answer_limit(CHAT, {"messages": []}, 50) is None
    assert answer_limit("/models", {}, 50) is None
