"""Hypothesis strategies for requests to the model API: valid, near-valid and hostile.

`REQUESTS[endpoint]` draws a `Sent` request (method, path, query, headers
and raw body bytes).  For the JSON endpoints a fifth of the bodies are
valid, two fifths are a valid body with one place swapped, dropped or added
to (a wrong type, a number out of range, a wrong role or content part, a bad
tool, an unknown or reserved field), and the rest are hostile: any JSON,
JSON that is not an object, NaN and infinities, lone surrogates, invalid
UTF-8, cut or flipped bytes, deep nesting.  Content types vary too (mostly
JSON, so that most bodies reach the checks).  Uploads are multipart bodies
built the same way; queries and file ids are hostile text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

MODEL = "fz-model"
OTHER_MODEL = "fz-not-granted"


@dataclass
class Sent:
    """One request as the client sent it (the credential is added by the caller)."""

    method: str
    path: str
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    query: bytes = b""
    credential: bool = True  # send the tenant's API key (sign-in sends its own, or none)


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
    return encode(meant, draw(st.booleans()))


def _typed(content_type: bytes | None) -> list[tuple[bytes, bytes]]:
    return [] if content_type is None else [(b"content-type", content_type)]


def json_requests(endpoint: str, path: str) -> st.SearchStrategy[Sent]:
    return st.builds(
        lambda body, kind: Sent("POST", path, body, _typed(kind)),
        json_body(endpoint),
        CONTENT_TYPES,
    )


# Queries, paths and uploads ------------------------------------------------------------------

QUERY_VALUES = (
    st.sampled_from(["", "asc", "desc", "ASC", "1", "0", "-1", "10000", "10001", "1e3", "0x10"])
    | st.sampled_from(["99999999999999999999999", " 5", "5 ", "\u0035", "%ff", "%00", "%"])
    | st.text(max_size=12)
)
QUERY_NAMES = st.sampled_from(["order", "limit", "after", "purpose", "x", "", "limit[]"])


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    """A query string: known and unknown names, hostile values, repeats, odd encodings."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=32))
    pairs = draw(st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=4))
    text = "&".join(f"{name}={value}" for name, value in pairs)
    return text.encode("utf-8", "surrogatepass")


ODD_HEADERS = st.lists(
    st.sampled_from(
        [
            (b"content-type", b"application/json"),
            (b"content-length", b"-1"),
            (b"content-encoding", b"gzip"),
            (b"transfer-encoding", b"chunked"),
            (b"accept", b"\xff"),
            (b"x-bulkhead-tenant", b"demo"),
            (b"x-request-id", b"\x00" * 3),
        ]
    ),
    max_size=2,
)


def models_requests() -> st.SearchStrategy[Sent]:
    """GET /v1/models with any query, odd headers, a body it does not take, or a wrong method."""
    method = st.sampled_from(["GET"] * 6 + ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    body = st.just(b"") | st.binary(max_size=32) | json_body("chat")
    return st.builds(
        lambda m, q, b, h: Sent(m, "/v1/models", b, h, q), method, queries(), body, ODD_HEADERS
    )


def list_requests() -> st.SearchStrategy[Sent]:
    return st.builds(lambda q, h: Sent("GET", "/v1/files", b"", h, q), queries(), ODD_HEADERS)


# A file id as it reaches the gateway: the path, percent-decoded by the server.
FILE_IDS = (
    st.sampled_from(["file-0", "file-", "..", ".", "%2e%2e", "file-" + "a" * 300, " ", "\x00"])
    | st.text(max_size=40).filter(lambda t: "/" not in t and t)
    | st.from_regex(r"\Afile-[0-9a-f]{8,40}\Z")
)


def one_file_requests(known: list[str]) -> st.SearchStrategy[Sent]:
    """GET, DELETE or GET .../content of a file: a real one (made by `known`), or any id."""
    ids = st.sampled_from(known) | FILE_IDS if known else FILE_IDS
    method_tail = st.sampled_from(
        [("GET", ""), ("DELETE", ""), ("GET", "/content"), ("DELETE", "/content"), ("PUT", "")]
    )
    return st.builds(
        lambda i, mt, q, h: Sent(mt[0], f"/v1/files/{i}{mt[1]}", b"", h, q),
        ids,
        method_tail,
        queries(),
        ODD_HEADERS,
    )


FILE_NAMES = st.sampled_from(
    ["a.jsonl", "../../etc/passwd", "..", ".", "", "a\\b", "C:\\x", "\u202egnp.exe", "x" * 600]
) | st.text(ANY_CHAR, max_size=20)
PURPOSES = mostly(
    st.sampled_from(["assistants", "batch", "fine-tune", "vision", "user_data"]),
    TEXT | st.sampled_from(["", " batch", "BATCH", "batch\x00"]),
)
BOUNDARY = b"fzbnd"


def _disposition(name: str, filename: str | None) -> bytes:
    extra = "" if filename is None else f'; filename="{filename}"'
    return f'Content-Disposition: form-data; name="{name}"{extra}'.encode("utf-8", "surrogatepass")


@st.composite
def upload_body(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    """(body, content type) of an upload: valid, one part wrong or missing, or hostile."""
    parts = [
        (_disposition("purpose", None), draw(PURPOSES).encode("utf-8", "surrogatepass")),
        (_disposition("file", draw(FILE_NAMES)), draw(st.binary(max_size=64))),
    ]
    kind = draw(st.sampled_from(["valid", "valid", "near", "near", "hostile"]))
    if kind == "near":
        change = draw(st.sampled_from(["drop", "twice", "named", "headers", "bytes"]))
        index = draw(st.integers(0, 1))
        if change == "drop":
            del parts[index]
        elif change == "twice":
            parts.append(parts[index])
        elif change == "named":
            parts[index] = (_disposition(draw(TEXT), draw(st.none() | TEXT)), parts[index][1])
        elif change == "headers":
            junk = draw(st.binary(max_size=40))
            parts[index] = (draw(st.sampled_from([b"", junk, parts[index][0] + junk])), b"x")
        else:
            parts[index] = (parts[index][0], draw(st.binary(max_size=40)))
    out = bytearray()
    for headers, data in parts:
        out += b"--" + BOUNDARY + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"
    out += b"--" + BOUNDARY + b"--\r\n"
    body = draw(raw_hostile(bytes(out))) if kind == "hostile" else bytes(out)
    quoted = st.just(b'multipart/form-data; boundary="fzbnd"')
    return body, draw(
        mostly(st.just(b"multipart/form-data; boundary=" + BOUNDARY), ODD_TYPES | quoted)
    )


def upload_requests() -> st.SearchStrategy[Sent]:
    return upload_body().map(lambda pair: Sent("POST", "/v1/files", pair[0], _typed(pair[1])))


# Sign-in (/auth/v1) --------------------------------------------------------------------------

SIGN_IN_PATHS = (
    "/auth/v1/login",
    "/auth/v1/logout",
    "/auth/v1/mfa/enroll",
    "/auth/v1/mfa/confirm",
    "/auth/v1/enrol",
    "/auth/v1/enrol/confirm",
)
PRINCIPALS = st.sampled_from(["fz-person", "nobody", "admin", ""]) | SHORT
PASSWORDS = st.sampled_from(["correct horse battery", "x" * 12, ""]) | SHORT
TOTPS = st.sampled_from(["000000", "123456", "x" * 17])
ROLE_NAMES = st.sampled_from(["tenant_admin", "end_user", "platform_admin", "root"])
SIGNING_IN = st.fixed_dictionaries(
    {"principal": PRINCIPALS, "password": PASSWORDS},
    optional={
        "tenant": st.sampled_from(["fz", "demo", "nope", "x" * 64]),
        "totp": TOTPS,
        "recovery_code": st.sampled_from(["abcd-efgh", "x" * 65]),
        "role": ROLE_NAMES,
    },
)
ENROLLING = st.fixed_dictionaries(
    {"principal": PRINCIPALS, "enrolment_secret": st.sampled_from(["s" * 32, ""]) | SHORT},
    optional={"password": PASSWORDS, "totp": TOTPS, "role": ROLE_NAMES},
)
SIGN_IN_BODIES = {path: ENROLLING if "/enrol" in path else SIGNING_IN for path in SIGN_IN_PATHS}
BEARERS = st.sampled_from([None, b"Bearer ", b"Bearer bks_x", b"Basic eA==", b"bearer \xff"]).map(
    lambda value: [] if value is None else [(b"authorization", value)]
)


@st.composite
def sign_in_requests(draw: st.DrawFn) -> Sent:
    """POSTs (mostly) to the sign-in paths: bodies valid, near-valid or hostile, any credential."""
    path = draw(st.sampled_from(SIGN_IN_PATHS))
    method = draw(mostly(st.just("POST"), st.sampled_from(["GET", "PUT", "DELETE"]), 9))
    kind = draw(st.sampled_from(["valid", "near", "near", "hostile-json", "hostile-bytes"]))
    if kind == "hostile-bytes":
        body = draw(raw_hostile(encode(draw(SIGN_IN_BODIES[path]))))
    elif kind == "hostile-json":
        body = encode(draw(JSON_VALUES), draw(st.booleans()))
    else:
        valid = draw(SIGN_IN_BODIES[path])
        body = encode(valid if kind == "valid" else draw(near_valid(st.just(valid))))
    headers = _typed(draw(CONTENT_TYPES)) + draw(BEARERS)
    return Sent(method, path, body, headers, credential=False)


def requests(endpoint: str, known_files: list[str]) -> st.SearchStrategy[Sent]:
    """The strategy of one `/v1` endpoint's requests."""
    if endpoint in VALID:
        return json_requests(
            endpoint, "/v1/chat/completions" if endpoint == "chat" else f"/v1/{endpoint}"
        )
    return {
        "models": models_requests,
        "files.upload": upload_requests,
        "files.list": list_requests,
        "files.one": lambda: one_file_requests(known_files),
        "auth": sign_in_requests,
    }[endpoint]()
