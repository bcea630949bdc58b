"""Shape checks of OpenAI request bodies: a wrong type is a 400 naming its parameter."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        (validate.embeddings, {"model": "m", "input": [[1, 2], [3]], "dimensions": 8}, False),
        (validate.completions, {"model": "m", "prompt": [1, 2, 3], "echo": True}, False),
        (
            validate.chat,
            {
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "data:,"}},
                        ],
                    },
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "42"},
                ],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                "tool_choice": "auto",
                "stop": ["\n"],
                "logit_bias": {"50256": -100},
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            True,
        ),
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
    # Each of these once reached the upstream (which answered 500, or took it as it pleased).
    ("chat-user-no-content", validate.chat, {"messages": [{"role": "user"}]},
     "messages[0].content"),
    ("chat-unknown-role", validate.chat, {"messages": [{"role": "root", "content": "x"}]},
     "messages[0].role"),
    ("chat-part-text-number", validate.chat,
     {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "messages[0].content[0].text"),
    ("chat-part-no-type", validate.chat,
     {"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0]"),
    ("chat-part-unknown-type", validate.chat,
     {"messages": [{"role": "user", "content": [{"type": "shell", "shell": "ls"}]}]},
     "messages[0].content[0].type"),
    ("chat-part-image-string", validate.chat,
     {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
     "messages[0].content[0].image_url"),
    ("chat-tool-no-call-id", validate.chat, {"messages": [{"role": "tool", "content": "x"}]},
     "messages[0].tool_call_id"),
    ("chat-tool-calls-of-user", validate.chat,
     {"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
     "messages[0].tool_calls"),
    ("chat-tool-call-arguments-object", validate.chat,
     {"messages": [{"role": "assistant", "tool_calls": [
         {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ("chat-name-number", validate.chat, {"messages": [{"role": "user", "content": "x", "name": 1}]},
     "messages[0].name"),
    ("chat-stop-number", validate.chat, {"messages": MESSAGES, "stop": 5}, "stop"),
    ("chat-stop-too-many", validate.chat, {"messages": MESSAGES, "stop": ["a"] * 17}, "stop"),
    ("chat-tools-object", validate.chat, {"messages": MESSAGES, "tools": {}}, "tools"),
    # A function that is not an object is named itself: its `name` is no place in the body.
    ("chat-tool-call-no-function", validate.chat,
     {"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]}]},
     "messages[0].tool_calls[0].function"),
    ("chat-tool-function-string", validate.chat,
     {"messages": MESSAGES, "tools": [{"type": "function", "function": "f"}]},
     "tools[0].function"),
    ("chat-tool-name-number", validate.chat,
     {"messages": MESSAGES, "tools": [{"type": "function", "function": {"name": 5}}]},
     "tools[0].function.name"),
    ("chat-tool-parameters-list", validate.chat,
     {"messages": MESSAGES, "tools": [{"type": "function", "function": {"name": "f",
                                                                      "parameters": []}}]},
     "tools[0].function.parameters"),
    ("chat-tool-choice-number", validate.chat, {"messages": MESSAGES, "tool_choice": 1},
     "tool_choice"),
    ("chat-penalty-high", validate.chat, {"messages": MESSAGES, "presence_penalty": 3},
     "presence_penalty"),
    ("chat-logit-bias-high", validate.chat, {"messages": MESSAGES, "logit_bias": {"1": 101}},
     "logit_bias.1"),
    ("chat-logprobs-number", validate.chat, {"messages": MESSAGES, "logprobs": 1}, "logprobs"),
    ("chat-include-usage-string", validate.chat,
     {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": "yes"}},
     "stream_options.include_usage"),
    ("completions-mixed-prompt", validate.completions, {"prompt": [1, "a"]}, "prompt"),
    ("completions-negative-token", validate.completions, {"prompt": [-1]}, "prompt"),
    ("completions-empty-token-list", validate.completions, {"prompt": [[]]}, "prompt"),
    ("completions-logprobs-high", validate.completions, {"prompt": "x", "logprobs": 6},
     "logprobs"),
    ("embeddings-null-input", validate.embeddings, {"input": [None]}, "input"),
    ("embeddings-dimensions-zero", validate.embeddings, {"input": "x", "dimensions": 0},
     "dimensions"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("check", "body", "param"), [row[1:] for row in BAD], ids=[row[0] for row in BAD]
)
def test_bad_bodies_name_the_parameter(
    check: Callable[[dict[str, Any]], bool], body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check(body)
    assert caught.value.param == param


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from([
    "messages", "prompt", "input", "tools", "tool_choice", "stop", "logit_bias", "stream",
    "stream_options", "max_tokens", "n", "temperature", "logprobs", "dimensions", "user",
])  # fmt: skip
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from([*validate.ROLES, "x"]) | JSON_VALUES},
    optional={"content": JSON_VALUES, "tool_calls": JSON_VALUES, "tool_call_id": JSON_VALUES,
              "name": JSON_VALUES},
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(
    fields=st.dictionaries(FIELDS, JSON_VALUES, max_size=5),
    messages=st.lists(MESSAGE, max_size=4),
)
def test_any_json_body_is_accepted_or_refused_as_a_400(
    fields: dict[str, Any], messages: list[dict[str, Any]]
) -> None:
    """Whatever the client sends, a check answers or refuses with `InvalidRequest`, never
    another error (which would be a 5xx)."""
    for check in (validate.chat, validate.completions, validate.embeddings):
        body = {"messages": messages, **fields} if messages and "messages" not in fields else fields
        with contextlib.suppress(InvalidRequest):
            check(dict(body))
