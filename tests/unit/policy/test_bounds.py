"""`_bounds`: what tenant Cedar text must satisfy before cedarpy's native parser sees it."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.errors import InvalidRequest
from bulkhead.policy._bounds import (
    MAX_BYTES,
    MAX_NESTING,
    MAX_POLICIES,
    MAX_POLICY_IFS,
    MAX_POLICY_TOKENS,
    MAX_TOKENS,
    check_text,
    json_depth,
    split_policies,
)

HEAD = "forbid (principal, action, resource) when { "
ROOT = Path(__file__).resolve().parents[3]


def refused(text: str) -> str:
    with pytest.raises(InvalidRequest) as caught:
        check_text(text)
    assert caught.value.param == "policies"
    return caught.value.message


def nested(levels: int) -> str:
    """`levels` of brackets at the deepest point, the `when` braces included."""
    inner = levels - 1
    return HEAD + "(" * inner + "true" + ")" * inner + " };"


def test_nesting_up_to_the_limit_passes_and_one_more_is_refused() -> None:
    check_text(nested(MAX_NESTING))
    assert f"{MAX_NESTING} levels at most" in refused(nested(MAX_NESTING + 1))


@pytest.mark.parametrize(
    "text",
    [
        '@id("' + "(" * 100 + '")\n' + HEAD + "true };",
        HEAD + 'context.ip == "' + "[" * 100 + '" };',
        HEAD + 'context.ip == "\\"' + "{" * 100 + '" };',
        "// " + "(" * 100 + "\n" + HEAD + "true };",
        HEAD + 'context.ip == "a;b;c" };',
    ],
    ids=["annotation", "string", "escaped-quote", "comment", "semicolons-in-a-string"],
)
def test_brackets_in_strings_and_comments_do_not_count(text: str) -> None:
    check_text(text)


def test_an_unclosed_string_is_refused() -> None:
    assert "not closed" in refused(HEAD + 'context.ip == "abc\\" };')


def test_each_limit_is_named() -> None:
    assert "KiB at most" in refused("// " + "x" * MAX_BYTES)
    chain = HEAD + "+".join(["1"] * MAX_POLICY_TOKENS) + " == 1 };"
    assert f"{MAX_POLICY_TOKENS} at most" in refused(chain)
    ifs = HEAD + "if true then " * (MAX_POLICY_IFS + 1) + "1" + " else 1" * (MAX_POLICY_IFS + 1)
    assert f"{MAX_POLICY_IFS} at most" in refused(ifs + " == 1 };")
    many = "forbid (principal, action, resource);\n" * (MAX_POLICIES + 1)
    assert f"{MAX_POLICIES} at most" in refused(many)
    check_text("forbid (principal, action, resource);\n" * MAX_POLICIES)
    wide = (HEAD + "+".join(["1"] * 400) + " == 1 };\n") * (MAX_TOKENS // 800 + 1)
    assert f"{MAX_TOKENS} at most" in refused(wide)


@pytest.mark.serial
def test_the_scan_is_linear_even_on_unclosed_escapes() -> None:
    started = time.perf_counter()
    for text in ('"' + '\\"' * 30_000, '"\\' * 30_000, "(" * MAX_BYTES):
        with pytest.raises(InvalidRequest):
            check_text(text)
    assert time.perf_counter() - started < 2.0


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='()[]{}"\\;/ \nif+a1@', max_size=400))
def test_any_text_is_accepted_or_refused_cleanly(text: str) -> None:
    with contextlib.suppress(InvalidRequest):
        check_text(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='()[]{}"\\;/ \nif+a1@', max_size=400))
def test_split_policies_joins_back_to_the_text(text: str) -> None:
    with contextlib.suppress(InvalidRequest):
        assert "".join(split_policies(text)) == text


def test_split_policies_cuts_only_where_a_policy_ends() -> None:
    text = (
        '@id("a;b") forbid (principal, action, resource) when { context.x == ";" }; // c;\n'
        "forbid (principal, action, resource) when { [1, 2].contains(1) };  \n"
    )
    first, second, rest = split_policies(text)
    assert first.endswith('";" };') and first.startswith('@id("a;b")')
    assert second.strip().startswith("// c;") and second.endswith("};")
    assert rest == "  \n"


def test_json_depth_is_iterative() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == 100_001
    assert json_depth({"a": [1, {"b": 2}]}) == 3


WORST = f"""
import json, sys, threading, cedarpy
from bulkhead.policy import load_schema
from bulkhead.policy._bounds import check_text
schema = load_schema()
head = "forbid (principal, action, resource) when {{ "
inner = {MAX_NESTING} - 1
chain = "+".join(["1"] * (({MAX_POLICY_TOKENS} - 40 - 2 * inner) // 2))
shapes = [
    head + "(" * inner + chain + ")" * inner + " == 1 }};",
    head + "[" * inner + chain + "]" * inner + ".isEmpty() }};",
    head + "if true then " * {MAX_POLICY_IFS} + "(" * inner + "true" + ")" * inner
    + " else false" * {MAX_POLICY_IFS} + " }};",
]
done = []
def parse():
    for text in shapes:
        check_text(text)
        cedarpy.policies_to_json_str(text)
        cedarpy.validate_policies(text, schema)
        cedarpy.PolicySet.from_str(text)
        done.append(len(text))
threading.stack_size(512 * 1024)
worker = threading.Thread(target=parse)
worker.start()
worker.join()
print(json.dumps(done))
"""


def test_the_worst_text_the_scan_accepts_parses_on_a_sixteenth_of_the_stack() -> None:
    """The threads cedarpy runs on have 8 MiB of stack; what passes the scan needs < 512 KiB."""
    result = subprocess.run(
        [sys.executable, "-c", WORST], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert len(json.loads(result.stdout)) == 3
