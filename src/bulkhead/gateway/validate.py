"""Shape checks of OpenAI request bodies: a wrong type is a 400 naming the field by its path.

The fields of OpenAI's API are checked before anything counts, scans or
forwards the body (roles, content parts, tool calls, tools, `stop`, ranges,
prompts and inputs as texts or token ids), so no layer below and no upstream
meets a malformed one; other fields pass through to the upstream, except the
reserved ones below, which a client must never set.
"""

from __future__ import annotations

from typing import Any

from bulkhead.errors import InvalidRequest

# Fields a client may not pass to an upstream: tenant identity comes from the
# credential, and a cache salt is the gateway's own (per tenant, secret).
RESERVED = ("tenant_id", "cache_salt", "bulkhead")

# What upstreams read as a completion's length: OpenAI's two names, and the names
# llama.cpp, TGI and Ollama read, which the gateway does not accept (what is forwarded is
# what admission checked against the cap and reserved).
LENGTHS = ("max_tokens", "max_completion_tokens")
FOREIGN_LENGTHS = ("n_predict", "max_new_tokens", "num_predict")


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


def _optional(body: dict[str, Any], name: str, kind: type, what: str, where: str = "") -> None:
    """`body[name]`, when there, is a `kind`; `where` is the path to `body` in the request."""
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        param = f"{where}.{name}" if where else name
        raise _bad(param, f"'{param}' must be {what}.")


def _stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise _bad("stream", "'stream' must be a boolean.")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("stream_options", "'stream_options' must be an object.")
    if options is not None:
        _optional(options, "include_usage", bool, "a boolean", "stream_options")
    return stream


def _stop(body: dict[str, Any]) -> None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if (
        not isinstance(stop, list)
        or len(stop) > MAX_STOP
        or not all(isinstance(item, str) for item in stop)
    ):
        raise _bad("stop", f"'stop' must be a string or an array of at most {MAX_STOP} strings.")


def _logit_bias(body: dict[str, Any]) -> None:
    bias = body.get("logit_bias")
    if bias is None:
        return
    if not isinstance(bias, dict) or len(bias) > MAX_LOGIT_BIAS:
        raise _bad(
            "logit_bias", f"'logit_bias' must be an object of at most {MAX_LOGIT_BIAS} entries."
        )
    for token, value in bias.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not -100 <= value <= 100
        ):
            raise _bad(
                f"logit_bias.{token}", "Each 'logit_bias' value must be a number from -100 to 100."
            )


def _lengths(body: dict[str, Any]) -> None:
    """One completion length, by a name every upstream reads the same way."""
    for name in FOREIGN_LENGTHS:
        if body.get(name) is not None:
            raise _bad(name, f"'{name}' is not supported; send 'max_tokens'.")
    _optional_int(body, "max_tokens", 1, 1_000_000)
    _optional_int(body, "max_completion_tokens", 1, 1_000_000)
    sent = [body[name] for name in LENGTHS if body.get(name) is not None]
    if len(sent) == 2 and sent[0] != sent[1]:
        raise _bad(
            "max_completion_tokens",
            "'max_tokens' and 'max_completion_tokens' differ; send one of them.",
        )


def fill_length(body: dict[str, Any], default: int | None) -> None:
    """Write the tier's default length in when the call names none, so the upstream stops
    there too (and admission reserves exactly that)."""
    if default is not None and all(body.get(name) is None for name in LENGTHS):
        body["max_tokens"] = default


def _generation(body: dict[str, Any]) -> bool:
    _lengths(body)
    _optional_int(body, "n", 1, 128)
    _optional_int(body, "best_of", 1, 128)
    _optional_int(body, "seed", -(2**63), 2**64 - 1)
    _optional_number(body, "temperature", 0, 2)
    _optional_number(body, "top_p", 0, 1)
    _optional_number(body, "presence_penalty", -2, 2)
    _optional_number(body, "frequency_penalty", -2, 2)
    _optional(body, "user", str, "a string")
    _stop(body)
    _logit_bias(body)
    return _stream(body)


# Chat -------------------------------------------------------------------------------------

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Content parts: the type, and the field it must carry (text as a string, the rest objects).
PART_TEXT = ("text", "refusal")
PART_OBJECT = ("image_url", "input_audio", "file", "video_url", "audio_url")
MAX_STOP = 16
MAX_LOGIT_BIAS = 1024


def _content(message: dict[str, Any], where: str, *, required: bool) -> None:
    content = message.get("content")
    param = f"{where}.content"
    if content is None:
        if required:
            raise _bad(param, f"'{param}' is required for a '{message['role']}' message.")
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _bad(param, "'content' must be a string or an array.")
    for j, part in enumerate(content):
        at = f"{param}[{j}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _bad(at, f"'{at}' must be an object with a 'type'.")
        kind = part["type"]
        if kind in PART_TEXT:
            if not isinstance(part.get(kind), str):
                raise _bad(f"{at}.{kind}", f"'{at}.{kind}' must be a string.")
        elif kind in PART_OBJECT:
            if not isinstance(part.get(kind), dict):
                raise _bad(f"{at}.{kind}", f"'{at}.{kind}' must be an object.")
        else:
            known = ", ".join((*PART_TEXT, *PART_OBJECT))
            raise _bad(f"{at}.type", f"'{at}.type' must be one of {known}.")


def _function(value: Any, where: str, *, arguments: bool) -> None:
    """`{"name": str, ...}`, and `"arguments": str` in a call."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        param = f"{where}.name" if isinstance(value, dict) else where  # a place the body has
        raise _bad(param, f"'{where}' must be an object with a string 'name'.")
    if arguments and not isinstance(value.get("arguments"), str):
        raise _bad(f"{where}.arguments", f"'{where}.arguments' must be a string (JSON text).")


def _message(message: Any, i: int) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise _bad(where, f"'{where}' must be an object with a 'role'.")
    role = message["role"]
    if role not in ROLES:
        raise _bad(f"{where}.role", f"'{where}.role' must be one of {', '.join(ROLES)}.")
    _optional(message, "name", str, "a string", where)
    calls = message.get("tool_calls")
    if calls is not None:
        if role != "assistant" or not isinstance(calls, list):
            raise _bad(
                f"{where}.tool_calls", "'tool_calls' must be an array, in an assistant message."
            )
        for j, call in enumerate(calls):
            at = f"{where}.tool_calls[{j}]"
            if not isinstance(call, dict) or not isinstance(call.get("id"), str):
                raise _bad(at, f"'{at}' must be an object with a string 'id'.")
            _function(call.get("function"), f"{at}.function", arguments=True)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise _bad(f"{where}.tool_call_id", f"'{where}.tool_call_id' must be a string.")
    speaks_by_calls = role == "assistant" and (calls or message.get("function_call"))
    _content(message, where, required=role != "assistant" or not speaks_by_calls)


def _tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", "'tools' must be an array.")
        for i, tool in enumerate(tools):
            where = f"tools[{i}]"
            if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
                raise _bad(where, f"'{where}' must be an object with a 'type'.")
            if tool["type"] == "function":
                _function(tool.get("function"), f"{where}.function", arguments=False)
                function: dict[str, Any] = tool["function"]
                _optional(function, "description", str, "a string", f"{where}.function")
                _optional(function, "parameters", dict, "an object", f"{where}.function")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise _bad("tool_choice", "'tool_choice' must be a string or an object.")
    _optional(body, "response_format", dict, "an object")
    _optional(body, "parallel_tool_calls", bool, "a boolean")
    _optional(body, "logprobs", bool, "a boolean")
    _optional_int(body, "top_logprobs", 0, 20)


def chat(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "'messages' must be a non-empty array.")
    for i, message in enumerate(messages):
        _message(message, i)
    _tools(body)
    return _generation(body)


# Completions and embeddings ---------------------------------------------------------------


def _texts_or_tokens(value: Any, name: str) -> None:
    """A string, or a non-empty array of strings, of token ids, or of arrays of token ids."""
    if isinstance(value, str):
        return
    what = (
        f"'{name}' must be a string, or a non-empty array of strings, of token ids or of "
        "arrays of token ids."
    )
    if not isinstance(value, list) or not value:
        raise _bad(name, what)
    if all(isinstance(item, str) for item in value) or all(_token(item) for item in value):
        return
    if all(isinstance(item, list) and item and all(_token(t) for t in item) for item in value):
        return
    raise _bad(name, what)


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def completions(body: dict[str, Any]) -> bool:
    _texts_or_tokens(body.get("prompt"), "prompt")
    _optional(body, "suffix", str, "a string")
    _optional(body, "echo", bool, "a boolean")
    _optional_int(body, "logprobs", 0, 5)
    return _generation(body)


def embeddings(body: dict[str, Any]) -> bool:
    _texts_or_tokens(body.get("input"), "input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise _bad("encoding_format", "'encoding_format' must be 'float' or 'base64'.")
    _optional_int(body, "dimensions", 1, 65_536)
    _optional(body, "user", str, "a string")
    if body.get("stream"):
        raise _bad("stream", "Embeddings cannot be streamed.")
    return False
