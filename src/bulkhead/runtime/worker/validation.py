"""Parsing and validation of OpenAI-style request bodies.

Every function here turns untrusted JSON into small typed values or raises a 400
``ApiError`` that names the offending parameter, the way the OpenAI API does. Unknown
parameters are ignored, as most OpenAI-compatible servers do, so that clients that send
extra fields (``user``, ``top_p``, ...) keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import orjson

from .backends import SamplingParams
from .errors import bad_request

DEFAULT_MAX_TOKENS: Final = 16
# The demo model is tiny and CPU-bound; a hard cap keeps one request from monopolising it.
MAX_TOKENS_CAP: Final = 256
MAX_EMBEDDING_INPUTS: Final = 2048
MAX_TEMPERATURE: Final = 2.0
# OpenAI's limits on ``stop``: up to four sequences.
MAX_STOP: Final = 4
MAX_STOP_CHARS: Final = 256
# Seeds are folded into this range because torch generators take unsigned 64-bit seeds.
_SEED_MODULUS: Final = 2**63

Body = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Whether to stream server-sent events and whether to append a usage chunk."""

    stream: bool
    include_usage: bool


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated ``/v1/chat/completions`` request."""

    messages: list[tuple[str, str]]
    sampling: SamplingParams
    streaming: StreamOptions


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A validated ``/v1/completions`` request."""

    prompt: str
    sampling: SamplingParams
    streaming: StreamOptions


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """A validated ``/v1/embeddings`` request."""

    texts: list[str]
    base64: bool


def parse_json_body(raw: bytes) -> Body:
    """Decode the request body, which must be a JSON object."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request(
            "We could not parse the JSON body of your request. The body must be valid JSON."
        ) from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def parse_chat_request(body: Body) -> ChatRequest:
    """Validate a chat completion request body."""
    _check_model(body)
    _check_n(body)
    messages = _parse_messages(body.get("messages"))
    if "max_completion_tokens" in body and body["max_completion_tokens"] is not None:
        max_tokens = _max_tokens(body, "max_completion_tokens")
    else:
        max_tokens = _max_tokens(body, "max_tokens")
    return ChatRequest(messages, _sampling(body, max_tokens), _stream_options(body))


def parse_completion_request(body: Body) -> CompletionRequest:
    """Validate a legacy text completion request body."""
    _check_model(body)
    _check_n(body)
    prompt = _parse_prompt(body.get("prompt"))
    max_tokens = _max_tokens(body, "max_tokens")
    return CompletionRequest(prompt, _sampling(body, max_tokens), _stream_options(body))


def parse_embedding_request(body: Body, dimensions: int) -> EmbeddingRequest:
    """Validate an embeddings request body for a model with ``dimensions`` outputs."""
    _check_model(body)
    texts = _parse_embedding_input(body.get("input"))
    encoding = body.get("encoding_format", "float")
    if encoding is None:
        encoding = "float"
    if encoding not in ("float", "base64"):
        raise bad_request("encoding_format must be 'float' or 'base64'.", param="encoding_format")
    requested = body.get("dimensions")
    # Matryoshka truncation is not supported, but asking for the native size is harmless.
    if requested is not None and _as_int(requested) != dimensions:
        raise bad_request(
            f"This model only produces {dimensions}-dimensional embeddings.", param="dimensions"
        )
    return EmbeddingRequest(texts, encoding == "base64")


def _as_int(value: object) -> int | None:
    """Return ``value`` if it is a JSON integer, else None.

    ``bool`` is a subclass of ``int`` in Python, but ``true`` is not a number in JSON.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _check_model(body: Body) -> None:
    """Require ``model`` to be a string when given; the worker serves one model anyway."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad_request("model must be a string.", param="model")


def _check_n(body: Body) -> None:
    """Reject ``n > 1`` loudly instead of silently returning fewer choices."""
    n = body.get("n")
    if n is not None and _as_int(n) != 1:
        raise bad_request("Only n=1 is supported by this worker.", param="n")


def _parse_messages(value: object) -> list[tuple[str, str]]:
    """Validate ``messages`` and flatten each one to ``(role, text)``."""
    if not isinstance(value, list) or not value:
        raise bad_request("messages must be a non-empty array.", param="messages")
    parsed: list[tuple[str, str]] = []
    for index, message in enumerate(value):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"{param} must be an object.", param=param)
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise bad_request(f"{param}.role must be a non-empty string.", param=f"{param}.role")
        parsed.append((role, _message_text(message.get("content"), f"{param}.content")))
    return parsed


def _message_text(content: object, param: str) -> str:
    """Accept string content, null content, or an array of ``{"type": "text"}`` parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise bad_request(f"{param} only supports text parts.", param=param)
            texts.append(part["text"])
        return "".join(texts)
    raise bad_request(f"{param} must be a string or an array of text parts.", param=param)


def _parse_prompt(value: object) -> str:
    """Accept a string prompt, or a one-element array of strings (a batch of one)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    raise bad_request(
        "prompt must be a string (or an array holding exactly one string).", param="prompt"
    )


def _parse_embedding_input(value: object) -> list[str]:
    """Accept one non-empty string or a non-empty array of at most 2048 non-empty strings."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise bad_request(
            "input must be a non-empty string or a non-empty array of strings.", param="input"
        )
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise bad_request(f"input may contain at most {MAX_EMBEDDING_INPUTS} items.", param="input")
    for text in texts:
        if not isinstance(text, str) or not text:
            raise bad_request("Every input item must be a non-empty string.", param="input")
    return texts


def _max_tokens(body: Body, name: str) -> int:
    """Read a positive token limit, defaulting to 16 and capping it at 256."""
    value = body.get(name)
    if value is None:
        return DEFAULT_MAX_TOKENS
    number = _as_int(value)
    if number is None or number <= 0:
        raise bad_request(f"{name} must be a positive integer.", param=name)
    return min(number, MAX_TOKENS_CAP)


def _sampling(body: Body, max_tokens: int) -> SamplingParams:
    """Read ``temperature`` (0 = greedy, the default), ``seed``, ``top_p`` and ``stop``."""
    temperature = body.get("temperature")
    if temperature is None:
        temperature = 0.0
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0.0 <= temperature <= MAX_TEMPERATURE
    ):
        raise bad_request(
            f"temperature must be a number between 0 and {MAX_TEMPERATURE:g}.",
            param="temperature",
        )
    raw_seed = body.get("seed")
    seed = _as_int(raw_seed)
    if raw_seed is not None and seed is None:
        raise bad_request("seed must be an integer.", param="seed")
    folded = None if seed is None else seed % _SEED_MODULUS
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=float(temperature),
        seed=folded,
        top_p=_top_p(body),
        stop=_stop(body),
    )


def _top_p(body: Body) -> float:
    """Read ``top_p``, a probability mass in [0, 1]; 1 (the default) keeps every token.

    0 keeps only the likeliest token, as the gateway's own check allows it.
    """
    top_p = body.get("top_p")
    if top_p is None:
        return 1.0
    if isinstance(top_p, bool) or not isinstance(top_p, int | float) or not 0.0 <= top_p <= 1.0:
        raise bad_request("top_p must be a number between 0 and 1.", param="top_p")
    return float(top_p)


def _stop(body: Body) -> tuple[str, ...]:
    """Read ``stop``: a string or up to four strings; empty ones stop nothing."""
    stop = body.get("stop")
    if stop is None:
        return ()
    values = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(values, list)
        or len(values) > MAX_STOP
        or not all(isinstance(v, str) and len(v) <= MAX_STOP_CHARS for v in values)
    ):
        raise bad_request(
            f"stop must be a string or an array of at most {MAX_STOP} strings of at most "
            f"{MAX_STOP_CHARS} characters.",
            param="stop",
        )
    return tuple(dict.fromkeys(v for v in values if v))


def _stream_options(body: Body) -> StreamOptions:
    """Read ``stream`` and ``stream_options.include_usage``."""
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("stream must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is None:
        return StreamOptions(stream, include_usage=False)
    if not isinstance(options, dict):
        raise bad_request("stream_options must be an object.", param="stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request(
            "stream_options.include_usage must be a boolean.",
            param="stream_options.include_usage",
        )
    return StreamOptions(stream, include_usage=include_usage)
