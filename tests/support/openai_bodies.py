"""Hypothesis strategies for OpenAI request bodies: valid, near-valid and hostile.

`json_body(endpoint)` draws the bytes of a chat, completions or embeddings
body.  A fifth are valid, two fifths are a valid body with one place
swapped, dropped or added to (a wrong type, a number out of range, a wrong
role or content part, a bad tool, an unknown or reserved field), and the
rest are hostile: any JSON, JSON that is not an object, NaN and infinities,
lone surrogates, invalid UTF-8, cut or flipped bytes, deep nesting.
`CONTENT_TYPES` labels them (mostly JSON, so that most bodies reach the
checks).  `tests/support/fuzz_requests.py` makes requests of them.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

MODEL = "fz-model"
OTHER_MODEL = "fz-not-granted"


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], tenths: int = 8) -> Any:
    """`usual` in `tenths` draws out of ten, else `odd` (`|` would pick each half the time)."""
    return st.integers(0, 9).flatmap(lambda i: usual if i < tenths else odd)


# JSON values, hostile and not ----------------------------------------------------------------

# Any Unicode, lone surrogates included (they become `\ud800` escapes in JSON text).
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.text(max_size=24) | st.text(ANY_CHAR, max_size=12)
NUMBERS = (
    st.integers(-(2**70), 2**70)
    | st.integers(-3, 3)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**400, 1e308, -0.0, 0.5])
)
LEAVES = st.none() | st.booleans() | NUMBERS | TEXT
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=16,
)


def encode(value: Any, ascii_only: bool = True) -> bytes:
    """JSON text of `value`: NaN and infinities as Python writes them (invalid JSON)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


# Valid bodies --------------------------------------------------------------------------------

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
SHORT = st.text(max_size=16)
TEXT_PART = st.fixed_dictionaries({"type": st.just("text"), "text": SHORT})
IMAGE_PART = st.fixed_dictionaries(
    {
        "type": st.just("image_url"),
        "image_url": st.fixed_dictionaries(
            {"url": st.sampled_from(["data:,", "https://x.test/a"])}
        ),
    }
)
CONTENT = SHORT | st.lists(TEXT_PART | IMAGE_PART, min_size=1, max_size=3)
FUNCTION = st.fixed_dictionaries(
    {"name": st.sampled_from(["f", "lookup"])},
    optional={"description": SHORT, "parameters": st.just({"type": "object"})},
)
TOOL = st.fixed_dictionaries({"type": st.just("function"), "function": FUNCTION})
CALL = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["c1", "c2"]),
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": st.just("f"), "arguments": st.just("{}")}),
    }
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    role = draw(st.sampled_from(ROLES))
    message: dict[str, Any] = {"role": role, "content": draw(CONTENT)}
    if role == "tool":
        message["tool_call_id"] = draw(st.sampled_from(["c1", "c2"]))
    if role == "assistant" and draw(st.booleans()):
        message["tool_calls"] = draw(st.lists(CALL, min_size=1, max_size=2))
        message["content"] = None
    if draw(st.booleans()):
        message["name"] = draw(st.sampled_from(["alice", "bob"]))
    return message


GENERATION = {
    "max_tokens": st.integers(1, 64),
    "n": st.integers(1, 2),
    "seed": st.integers(-(2**63), 2**64 - 1),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "presence_penalty": st.floats(-2, 2),
    "frequency_penalty": st.floats(-2, 2),
    "user": SHORT,
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "stop": SHORT | st.lists(SHORT, max_size=4),
    "logit_bias": st.dictionaries(st.sampled_from(["1", "50256"]), st.integers(-100, 100)),
}
CHAT_ONLY = {
    "tools": st.lists(TOOL, max_size=2),
    "tool_choice": st.sampled_from(["auto", "none"]) | st.just({"type": "function"}),
    "response_format": st.just({"type": "json_object"}),
    "parallel_tool_calls": st.booleans(),
}
TOKENS = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=6)
TEXTS_OR_TOKENS = (
    SHORT
    | st.lists(SHORT, min_size=1, max_size=4)
    | TOKENS
    | st.lists(TOKENS, min_size=1, max_size=3)
)
VALID: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "chat": st.fixed_dictionaries(
        {"model": st.just(MODEL), "messages": st.lists(messages(), min_size=1, max_size=4)},
        optional=GENERATION | CHAT_ONLY,
    ),
    "completions": st.fixed_dictionaries(
        {"model": st.just(MODEL), "prompt": TEXTS_OR_TOKENS},
        optional=GENERATION | {"echo": st.booleans(), "suffix": SHORT},
    ),
    "embeddings": st.fixed_dictionaries(
        {"model": st.just(MODEL), "input": TEXTS_OR_TOKENS},
        optional={
            "encoding_format": st.sampled_from(["float", "base64"]),
            "dimensions": st.integers(1, 1024),
            "user": SHORT,
        },
    ),
}

# Near-valid bodies: one place in a valid body changed ----------------------------------------

# What a field is swapped for: wrong types, numbers out of range, wrong roles and parts.
SWAPS: st.SearchStrategy[Any] = (
    JSON_VALUES
    | st.sampled_from(
        [
            "wizard",
            "",
            [],
            {},
            [None],
            [{}],
            {"type": "nope"},
            {"type": "text"},
            {"type": "image_url", "image_url": "x"},
            {"role": "root", "content": "x"},
            {"role": "tool", "content": "x"},
            {"role": "assistant"},
            {"type": "function", "function": {"name": 5}},
            OTHER_MODEL,
            "fz-unknown",
        ]
    )
    | st.sampled_from(ROLES)
)
UNKNOWN_FIELDS = st.sampled_from(
    [
        "tenant_id",
        "cache_salt",
        "bulkhead",
        "guard",
        "__proto__",
        "x-extra",
        "model ",
        "MODEL",
        "max_completion_tokens",
        "logprobs",
        "top_logprobs",
        "best_of",
    ]
)


def _places(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `value` (dict keys and list indices), `()` included."""
    found = [at]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _places(inner, (*at, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _places(inner, (*at, index))
    return found


@st.composite
def near_valid(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> Any:
    body = json.loads(json.dumps(draw(base)))  # a deep copy
    at = draw(st.sampled_from(_places(body)[1:] or [()]))
    if not at:
        return body
    parent = body
    for step in at[:-1]:
        parent = parent[step]
    last = at[-1]
    action = draw(st.sampled_from(["swap", "swap", "swap", "drop", "add"]))
    if action == "swap":
        parent[last] = draw(SWAPS)
    elif action == "drop":
        del parent[last]
    elif isinstance(parent, dict):
        parent[draw(UNKNOWN_FIELDS | TEXT)] = draw(SWAPS)
    else:
        parent.insert(last, draw(SWAPS))
    return body


# Bodies as bytes, and their content types ----------------------------------------------------

JSON_TYPE = b"application/json"
ODD_TYPES = st.sampled_from(
    [
        None,
        b"",
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"APPLICATION/JSON",
        b"application/json; charset=utf-8",
        b"application/json; charset=latin-1",
        b"application/json;;",
        b"application/jsonx",
        b"application/vnd.api+json",
        b"application/json\xff",
        b"\xc3\x28",
    ]
) | st.binary(max_size=24).filter(lambda b: not {0, 10, 13} & set(b))
CONTENT_TYPES = mostly(st.just(JSON_TYPE), ODD_TYPES)


def deep(depth: int) -> bytes:
    return b'{"model": "' + MODEL.encode() + b'", "messages": ' + b"[" * depth + b"]" * depth + b"}"


@st.composite
def raw_hostile(draw: st.DrawFn, valid: bytes) -> bytes:
    """Bytes that are not the JSON they look like: cut, flipped, padded, nested, not UTF-8."""
    kind = draw(st.sampled_from(["cut", "flip", "pad", "deep", "binary", "bad-utf8", "nan"]))
    if kind == "cut":
        return valid[: draw(st.integers(0, max(0, len(valid) - 1)))]
    if kind == "flip" and valid:
        index = draw(st.integers(0, len(valid) - 1))
        return valid[:index] + bytes([draw(st.integers(0, 255))]) + valid[index + 1 :]
    if kind == "pad":
        pad = draw(st.sampled_from([b"\xef\xbb\xbf", b" ", b"\x00", b"{}", b",", b"\n\n"]))
        return pad + valid if draw(st.booleans()) else valid + pad
    if kind == "deep":
        return deep(draw(st.sampled_from([64, 127, 128, 129, 255, 256, 1023, 1024, 1025, 5000])))
    if kind == "bad-utf8":
        return valid.replace(b'"', b'"\xff\xfe', 1) if b'"' in valid else b'"\xed\xa0\x80"'
    if kind == "nan":
        return draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"])).join(
            valid.split(b"1", 1) if b"1" in valid else [b"[", b"]"]
        )
    return draw(st.binary(max_size=64))


@st.composite
def json_body(draw: st.DrawFn, endpoint: str) -> bytes:
    """A body for a JSON endpoint: valid, near-valid, hostile JSON or hostile bytes."""
    valid = VALID[endpoint]
    kind = draw(st.sampled_from(["valid", "near", "near", "hostile-json", "hostile-bytes"]))
    if kind == "hostile-bytes":
        return draw(raw_hostile(encode(draw(valid))))
    meant: Any
    if kind == "valid":
        meant = draw(valid)
    elif kind == "near":
        meant = draw(near_valid(valid))
    else:
        meant = draw(JSON_VALUES | st.dictionaries(st.sampled_from(["model", "messages"]), SWAPS))
    size = draw(mostly(st.just("small"), st.sampled_from(["spaces", "spaces", "text"]), 9))
    if size == "text" and isinstance(meant, dict):
        meant = {**meant, "user": "lorem ipsum " * 1_500}  # 18 KB scanned off the loop
    body = encode(meant, draw(st.booleans()))
    # Over 16 KiB a body takes admission's slow path: cheap checks first, then shape and
    # count on a worker thread; whitespace gets it there without the guard's scan cost.
    return body + b" " * 17_000 if size == "spaces" else body
