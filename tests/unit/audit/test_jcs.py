"""RFC 8785 canonical JSON: the RFC's own examples, edge cases and properties."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.audit.jcs import canonicalize, serialize_number

# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical JSON numbers.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    assert serialize_number(_double(bits)) == expected
    assert canonicalize(_double(bits)) == expected.encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinities_are_refused(bits: str) -> None:
    with pytest.raises(ValueError, match="no form"):
        canonicalize([_double(bits)])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (0.001, "0.001"),
        (2e-3, "0.002"),
        (4.50, "4.5"),
        (1e30, "1e+30"),
        (1e-27, "1e-27"),
        (123e20, "1.23e+22"),
        (100.0, "100"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (-1.5, "-1.5"),
        (333333333.33333329, "333333333.3333333"),
    ],
)
def test_ecmascript_number_forms(value: float, expected: str) -> None:
    assert serialize_number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (-7, "-7"),
        (2**53, "9007199254740992"),
        (10**21, "1e+21"),
        (-(10**21), "-1e+21"),
        (65362276199876410, "65362276199876410"),
    ],
)
def test_integers_serialise_as_their_double(value: int, expected: str) -> None:
    assert canonicalize(value) == expected.encode()


@pytest.mark.parametrize("value", [2**53 + 1, 2**68, -(2**64), 10**400])
def test_integers_whose_double_prints_another_integer_are_refused(value: int) -> None:
    # 2**68 is a double, but it prints as 295147905179352830000: a reader
    # taking integers exactly would see another value.
    with pytest.raises(ValueError, match="not exactly representable"):
        canonicalize({"n": value})


def test_rfc8785_section_3_2_3_example() -> None:
    # RFC 8785 §3.2.3, the input with numbers, escapes and literals.
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(json.loads(text)) == expected.encode()


def test_rfc8785_section_3_2_3_sorting() -> None:
    # RFC 8785 §3.2.3: names sort by UTF-16 code units, so the emoji (a
    # surrogate pair, 0xD83D...) sorts before U+FB33 although its code point is larger.
    members = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = list(json.loads(canonicalize(members)).values())
    assert order == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\b\t\n\f\r", '"\\b\\t\\n\\f\\r"'),
        ("\x00\x01\x1f", '"\\u0000\\u0001\\u001f"'),
        ('"\\', '"\\"\\\\"'),
        ("/\x7f\u2028", '"/\x7f\u2028"'),
        ("é€😀", '"é€😀"'),
    ],
)
def test_string_escapes(text: str, expected: str) -> None:
    # RFC 8785 §3.2.2.2: only '"', '\' and U+0000..U+001F are escaped.
    assert canonicalize(text) == expected.encode()


def test_no_whitespace_and_nesting() -> None:
    value = {"b": [1, {"d": None, "c": True}], "a": {}, "e": []}
    assert canonicalize(value) == b'{"a":{},"b":[1,{"c":true,"d":null}],"e":[]}'


@pytest.mark.parametrize("value", ["\ud800", {"\udc00": 1}, ["a\ud83d"]])
def test_lone_surrogates_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        canonicalize(value)


@pytest.mark.parametrize("value", [{1: "a"}, {"a": b"bytes"}, {1.5}, object()])
def test_non_json_types_are_refused(value: object) -> None:
    with pytest.raises(TypeError):
        canonicalize(value)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


def _parse(data: bytes) -> Any:
    # RFC 8785 reads every JSON number as a double, so 1 and 1.0 are one number.
    return json.loads(data, parse_int=float)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_output_parses_back_to_an_equal_value(value: Any) -> None:
    assert _parse(canonicalize(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _json_values, max_size=8), st.randoms())
def test_member_order_of_the_input_is_irrelevant(members: dict[str, Any], rng: Any) -> None:
    items = list(members.items())
    rng.shuffle(items)
    assert canonicalize(dict(items)) == canonicalize(members)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_canonical_form_is_a_fixed_point(value: Any) -> None:
    once = canonicalize(value)
    assert canonicalize(_parse(once)) == once


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_read_back_exactly(value: float) -> None:
    assert float(serialize_number(value)) == value


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_strings_agree_with_the_standard_library(text: str) -> None:
    # Python's json escapes exactly the RFC 8785 set when ensure_ascii is off.
    try:
        expected = json.dumps(text, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return
    assert canonicalize(text) == expected


# The orjson fast path for flat objects must agree byte for byte with the full encoder.

_flat_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
)


@given(st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127)), _flat_values))
def test_flat_fast_path_matches_the_full_encoder(members: dict[str, object]) -> None:
    from bulkhead.audit import jcs

    assert jcs.canonicalize(members) == jcs._serialize(members).encode("utf-8")
