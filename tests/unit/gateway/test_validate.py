"""Shape checks of OpenAI request bodies: a wrong type is a 400 naming its parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bulkhead.errors import InvalidRequest
from bulkhead.gateway import validate

MESSAGES = [{"role": "user", "content": "hi"}]


def test_reserved_fields_include_tenant_identity_and_cache_salt() -> None:
    assert {"tenant_id", "cache_salt"} <= set(validate.RESERVED)


@pytest.mark.parametrize(
    ("check", "body", "stream"),
    [
        (validate.chat, {"model": "m", "messages": MESSAGES}, False),
        (validate.chat, {"model": "m", "messages": MESSAGES, "stream": True}, True),
        (validate.chat, {"model": "m", "messages": MESSAGES, "stream": None}, False),
        (validate.completions, {"model": "m", "prompt": "hi"}, False),
        (validate.completions, {"model": "m", "prompt": ["a", "b"], "stream": True}, True),
        (validate.embeddings, {"model": "m", "input": "hi"}, False),
        (validate.embeddings, {"model": "m", "input": ["a"], "encoding_format": "base64"}, False),
    ],
)
def test_valid_bodies_pass_and_report_streaming(
    check: Callable[[dict[str, Any]], bool], body: dict[str, Any], stream: bool
) -> None:
    assert check(body) is stream


def test_reserved_and_unknown_fields_pass_validation_untouched() -> None:
    body = {
        "model": "m",
        "messages": MESSAGES,
        "tenant_id": "ten_other",
        "cache_salt": "guess",
        "top_k": 5,
    }
    before = dict(body)
    assert validate.chat(body) is False
    assert body == before


BAD: list[tuple[str, Callable[[dict[str, Any]], bool], dict[str, Any], str]] = [
    ("chat-no-messages", validate.chat, {}, "messages"),
    ("chat-empty-messages", validate.chat, {"messages": []}, "messages"),
    ("chat-messages-object", validate.chat, {"messages": {"role": "user"}}, "messages"),
    ("chat-message-string", validate.chat, {"messages": ["hi"]}, "messages[0]"),
    ("chat-message-no-role", validate.chat, {"messages": [{"content": "x"}]}, "messages[0]"),
    (
        "chat-content-number",
        validate.chat,
        {"messages": [*MESSAGES, {"role": "user", "content": 1}]},
        "messages[1].content",
    ),
    ("chat-stream-string", validate.chat, {"messages": MESSAGES, "stream": "yes"}, "stream"),
    (
        "chat-stream-options-list",
        validate.chat,
        {"messages": MESSAGES, "stream": True, "stream_options": []},
        "stream_options",
    ),
    ("chat-max-tokens-zero", validate.chat, {"messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
    (
        "chat-max-tokens-bool",
        validate.chat,
        {"messages": MESSAGES, "max_tokens": True},
        "max_tokens",
    ),
    ("chat-n-float", validate.chat, {"messages": MESSAGES, "n": 1.5}, "n"),
    (
        "chat-temperature-high",
        validate.chat,
        {"messages": MESSAGES, "temperature": 2.5},
        "temperature",
    ),
    ("chat-top-p-string", validate.chat, {"messages": MESSAGES, "top_p": "1"}, "top_p"),
    ("completions-no-prompt", validate.completions, {}, "prompt"),
    ("completions-empty-list", validate.completions, {"prompt": []}, "prompt"),
    ("completions-prompt-number", validate.completions, {"prompt": 3}, "prompt"),
    ("embeddings-no-input", validate.embeddings, {}, "input"),
    ("embeddings-empty-list", validate.embeddings, {"input": []}, "input"),
    (
        "embeddings-bad-format",
        validate.embeddings,
        {"input": "x", "encoding_format": "int8"},
        "encoding_format",
    ),
    ("embeddings-stream", validate.embeddings, {"input": "x", "stream": True}, "stream"),
]


@pytest.mark.parametrize(
    ("check", "body", "param"), [row[1:] for row in BAD], ids=[row[0] for row in BAD]
)
def test_bad_bodies_name_the_parameter(
    check: Callable[[dict[str, Any]], bool], body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check(body)
    assert caught.value.param == param
