"""A JSON body's cost and nesting, estimated from its bytes before any parser sees it."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from bulkhead.errors import InvalidRequest, PayloadTooLarge
from bulkhead.web import jsonbody
from bulkhead.web.jsonbody import MAX_DEPTH, check_shape


def nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return json.dumps({"tools": json.loads(opener * (depth - 1) + closer * (depth - 1))}).encode()


def mixed(depth: int) -> bytes:
    value: object = 1
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return orjson.dumps({"v": value})


@pytest.mark.parametrize("build", [nested, mixed])
def test_depth_up_to_the_bound_passes_one_more_is_refused(build: object) -> None:
    check_shape(build(MAX_DEPTH))  # type: ignore[operator]
    with pytest.raises(InvalidRequest) as refused:
        check_shape(build(MAX_DEPTH + 1))  # type: ignore[operator]
    assert f"deeper than {MAX_DEPTH}" in refused.value.message


def test_brackets_and_commas_inside_strings_do_not_count() -> None:
    text = '"[{,\\"' * 30_000 + "\\\\"
    check_shape(orjson.dumps({"messages": [{"role": "user", "content": text}]}))


def test_cost_bound() -> None:
    check_shape(orjson.dumps({"prompt": [1] * 1_000_000}))
    with pytest.raises(PayloadTooLarge):
        check_shape(orjson.dumps({"prompt": [1] * 2_000_000}))
    with pytest.raises(PayloadTooLarge):
        check_shape(b"[" + b",".join([b"[]"] * 400_000) + b"]")
    with pytest.raises(PayloadTooLarge):
        check_shape(orjson.dumps({"input": ["a"] * 800_000}))


def test_malformed_json_is_left_to_the_parser() -> None:
    for bad in (b'{"a": [[[[[' * 40, b"]" * 100 + b"[" * 100, b'{"a": "' + b"[" * 100):
        check_shape(bad)


def reference_structure(body: bytes) -> bytes:
    """The bytes outside strings, found one character at a time."""
    out, inside, escaped = bytearray(), False, False
    for byte in body:
        if inside:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                inside = False
        elif byte == ord('"'):
            inside = True
        else:
            out.append(byte)
    return bytes(out)


def test_strings_are_dropped_exactly_across_segment_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonbody, "_SEGMENT", 7)  # every escape lands on an edge somewhere
    rng = random.Random(12)
    alphabet = ["\\", '"', "[", "]", "{", ",", "a", "\\\\", '\\"']
    for _ in range(300):
        strings = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
                   for _ in range(rng.randint(1, 6))]  # fmt: skip
        body = orjson.dumps({"s": strings, "n": [[1], {"k": [2]}]})
        structure, count = jsonbody._structure(body, 10**9)
        assert structure == reference_structure(body), body
        assert count == len(strings) + 3  # and the keys "s", "n", "k"
