"""Shape checks of OpenAI request bodies: wrong types get a 400 naming the parameter.

Only the fields Bulkhead relies on are checked; other fields pass through to
the upstream, except the reserved ones below, which a client must never set.
"""

from __future__ import annotations

from typing import Any

from bulkhead.errors import InvalidRequest

# Fields a client may not pass to an upstream: tenant identity comes from the
# credential, and a cache salt is the gateway's own (per tenant, secret).
RESERVED = ("tenant_id", "cache_salt", "bulkhead")

CHECKED = "bulkhead.shape_checked"
"""Scope key set by the admission layer once the body has its endpoint's shape."""


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _optional_int(body: dict[str, Any], name: str, lo: int, hi: int) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(name, f"'{name}' must be an integer between {lo} and {hi}.")


def _optional_number(body: dict[str, Any], name: str, lo: float, hi: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise _bad(name, f"'{name}' must be a number between {lo} and {hi}.")


def _stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise _bad("stream", "'stream' must be a boolean.")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("stream_options", "'stream_options' must be an object.")
    return stream


def _generation(body: dict[str, Any]) -> bool:
    _optional_int(body, "max_tokens", 1, 1_000_000)
    _optional_int(body, "max_completion_tokens", 1, 1_000_000)
    _optional_int(body, "n", 1, 128)
    _optional_int(body, "best_of", 1, 128)
    _optional_number(body, "temperature", 0, 2)
    _optional_number(body, "top_p", 0, 1)
    return _stream(body)


def chat(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "'messages' must be a non-empty array.")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _bad(f"messages[{i}]", f"'messages[{i}]' must be an object with a 'role'.")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"messages[{i}].content", "'content' must be a string or an array.")
    return _generation(body)


def completions(body: dict[str, Any]) -> bool:
    prompt = body.get("prompt")
    if not isinstance(prompt, str | list) or (isinstance(prompt, list) and not prompt):
        raise _bad("prompt", "'prompt' must be a string or a non-empty array.")
    return _generation(body)


def embeddings(body: dict[str, Any]) -> bool:
    data = body.get("input")
    if not isinstance(data, str | list) or (isinstance(data, list) and not data):
        raise _bad("input", "'input' must be a string or a non-empty array.")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise _bad("encoding_format", "'encoding_format' must be 'float' or 'base64'.")
    if body.get("stream"):
        raise _bad("stream", "Embeddings cannot be streamed.")
    return False
