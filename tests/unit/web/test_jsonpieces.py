"""A large JSON body parsed in pieces gives what one orjson call gives, and holds the lock briefly.

The property tests use pieces of a few bytes, so that every cut (between
members, inside long strings, next to escapes and multi-byte characters)
happens many times in small documents; mutated documents must be refused
exactly when orjson refuses them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bulkhead.web import jsonpieces
from bulkhead.web.jsonpieces import loads

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from('"\\/\n\t\u2028😀é'),
    max_size=40,
)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(TEXT, inner, max_size=6),
    max_leaves=30,
)
LAYOUTS = st.sampled_from([
    {}, {"ensure_ascii": False}, {"indent": 1}, {"separators": (",", ":")},
    {"separators": (" , ", " : "), "ensure_ascii": False},
])  # fmt: skip


def outcome(parse: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "value", parse(body)
    except orjson.JSONDecodeError:
        return "refused", None


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.dictionaries(TEXT, VALUES, max_size=8), layout=LAYOUTS, piece=st.integers(1, 40))
def test_same_value_as_one_parse(value: dict[str, Any], layout: dict[str, Any], piece: int) -> None:
    body = json.dumps(value, **layout).encode()
    assert loads(body, piece=piece) == orjson.loads(body)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.dictionaries(TEXT, VALUES, min_size=1, max_size=6),
    layout=LAYOUTS,
    piece=st.integers(1, 30),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(
        [b"", b",", b":", b"[", b"]", b"{", b"}", b'"', b"\\", b" ", b"1", b"\xc3", b"\\ud83d",
         b"\\udc00", b"\x00", b"x"]
    )), min_size=1, max_size=3),
)  # fmt: skip
@example(value={"a": "x" * 50}, layout={}, piece=4, edits=[(60, b"")])
def test_refused_exactly_when_one_parse_refuses(
    value: dict[str, Any], layout: dict[str, Any], piece: int, edits: list[tuple[int, bytes]]
) -> None:
    body = bytearray(json.dumps(value, **layout).encode())
    for at, text in edits:  # replace one byte (or delete it) at each place
        at %= len(body)
        body[at : at + 1] = text
    mutated = bytes(body)
    assert outcome(lambda b: loads(b, piece=piece), mutated) == outcome(orjson.loads, mutated)


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii " * 20,
        "é😀" * 40,
        "\\" * 50 + '"' * 30,
        "😀" * 60,  # ensure_ascii writes each as a surrogate pair of escapes
        "a\u2028\u0000\x1f" * 30,
    ],
)
@pytest.mark.parametrize("piece", [1, 2, 5, 6, 7, 11, 13])
def test_long_strings_cut_anywhere(text: str, piece: int) -> None:
    for ensure_ascii in (True, False):
        body = json.dumps({"t": text, "u": [text, {"v": text}]}, ensure_ascii=ensure_ascii)
        assert loads(body.encode(), piece=piece) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": [1, 2, 3]} x',
        b'{"a": [1, 2, 3]]',
        b'{"a": [1, 2, 3}}',
        b'{"a": [1, 2, 3,]}',
        b'{"a": [, 1, 2, 3]}',
        b'{"a": [1, , 2]}',
        b'{"a" [1, 2, 3]}',
        b"{1: [1, 2, 3]}",
        b'{"a": "unterminated}',
        b'{"a": "\\ud800 lone high surrogate"}',
        b'{"a": "bad utf-8 \xc3"}',
        b'{"a": NaN, "b": [1, 2, 3]}',
        b"[1, 2, 3",
        b"   ",
    ],
)
def test_malformed_bodies_refused(body: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    with pytest.raises(orjson.JSONDecodeError):
        loads(body, piece=3)


def test_duplicate_keys_keep_the_last_value_in_the_first_place() -> None:
    body = b'{"a": 1, "b": [2, 2], "a": 3, "c": {"a": 1, "a": 2}}'
    parsed = loads(body, piece=4)
    assert parsed == orjson.loads(body) == {"a": 3, "b": [2, 2], "c": {"a": 2}}
    assert list(parsed) == list(orjson.loads(body))


def test_empty_containers_padded_with_whitespace() -> None:
    for body in (b"[" + b" " * 100 + b"]", b"{" + b"\n" * 100 + b"}", b' {"a": [  ]} '):
        assert loads(body, piece=8) == orjson.loads(body)


MIB = 1024 * 1024
UNIT = "\uff49\uff47\uff4e\uff4f\uff52\uff45\u200b\u0430ll \u0440r\u0435vi\u043eus\u202e "
ESCAPED = b'"' + b"\\\\" * 36_500 + b'"'
FAR = b"\\n" + "é\\\\".encode() * (8 * MIB // 5)
LONG = b'"' + b"a" * (8 * MIB) + b'"'
LARGE = {
    "8 MiB of escaped unicode": json.dumps({"prompt": UNIT * (8 * MIB // 60)}).encode(),
    "7 MiB prompt": orjson.dumps({"messages": [{"role": "user", "content": "w " * 3_600_000}]}),
    "20,000 inputs": orjson.dumps({"input": ["x" * 300] * 20_000}),
    "300,000 small values": orjson.dumps({"tools": [[1, "a", {"k": None}]] * 100_000}),
    "one message of 50,000 parts": orjson.dumps({"messages": [{"role": "user", "content": [
        {"type": "text", "text": f"part {i}"} for i in range(50_000)]}]}),
    # An attacker's review: each of these once made one orjson call of megabytes, or cost
    # hundreds of times one parse (strings of escaped backslashes: 9 s).
    "strings of escaped backslashes": b"[" + b",".join([ESCAPED] * 114) + b"]",
    "escapes megabytes apart": b'{"a":"' + b"a" * 65_533 + FAR + b'\\n"}',
    "a run of backslashes": b'{"a":"' + b"\\\\" * (4 * MIB - 10) + b'"}',
    "megabytes of whitespace": b'{"a":[' + b" " * (8 * MIB) + b"1]}",
    "nested 64 deep": b'{"a":' * 32 + b"[" * 32 + LONG + b"]" * 32 + b"}" * 32,
}  # fmt: skip


@pytest.fixture
def orjson_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of what each call to `orjson.loads` parses, from now on."""
    sizes: list[int] = []
    real = orjson.loads

    def counting(text: Any) -> Any:
        sizes.append(len(text))
        return real(text)

    monkeypatch.setattr(jsonpieces.orjson, "loads", counting)
    return sizes


@pytest.mark.parametrize("name", LARGE)
def test_no_call_to_orjson_parses_more_than_a_piece(name: str, orjson_calls: list[int]) -> None:
    """One orjson call over the whole body holds the lock 10 to 40 ms (measured here for
    these); in pieces, no call parses more than about a piece (a string is cut at the first
    safe place after a piece: within 13 bytes)."""
    body = LARGE[name]
    whole = jsonpieces.orjson.loads(body)
    orjson_calls.clear()
    assert loads(body) == whole
    assert max(orjson_calls) <= jsonpieces.PIECE + 16, (name, max(orjson_calls))


def test_small_bodies_are_one_call(orjson_calls: list[int]) -> None:
    loads(b'{"model": "m", "messages": []}')
    assert len(orjson_calls) == 1
