"""Bounds on Cedar text, checked in pure Python before cedarpy's native parser sees it.

cedarpy's parser recurses on the machine stack and has no depth limit of its
own: 800 nested parentheses (1.7 KB) or a chain of 30,000 `+` (60 KB)
overflow the default 8 MiB stack and kill the process.  So nothing
tenant-written reaches it before this scan has counted, outside string
literals and comments, how deep `()`, `[]` and `{}` nest, how many tokens and
`if`s each policy has, and how many policies there are.

The limits were measured (tests/security/test_policy_input.py does it again in
a subprocess): one level of brackets costs the parser about 12 KiB of stack,
an `if` about 1.4 KiB and a link of an operator chain about 0.3 KiB, so the
worst text these limits let through needs under 384 KiB (it parses on a
512 KiB stack), against the 8 MiB of the threads it runs on.  The token
limits also bound the time cedarpy holds the GIL while it converts the text
to JSON (a few tens of milliseconds).
After the parse, Cedar's loader stops at 128 levels of the JSON form, which
in turn keeps evaluation far inside the stack; `check_depth` names a policy
over that limit when the load fails.

A comment ends where Cedar's lexer ends it, at a line feed or a carriage
return: a scanner that read past a carriage return would take the brackets
after it for comment while cedarpy parses them.

The scanner is one regular expression with no backtracking (every character
matches exactly one alternative; an unterminated string runs to the end), so
it is linear in the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bulkhead.errors import InvalidRequest

MAX_BYTES = 64 * 1024
MAX_POLICIES = 256
MAX_TOKENS = 8 * 1024
MAX_POLICY_TOKENS = 1024
MAX_NESTING = 16
MAX_POLICY_IFS = 16
# Levels of one policy's JSON form (EST): cedarpy loads 124 and refuses 126.
MAX_JSON_DEPTH = 124

_OPEN, _CLOSE = "([{", ")]}"
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<comment>//[^\n\r]*)
      | (?P<string>"(?:[^"\\]|\\.)*(?P<end>"|\\?\Z))
      | (?P<word>[A-Za-z0-9_]+)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)


def _refuse(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="policies")


@dataclass(slots=True)
class _Policy:
    """What the scan counts of the policy it is in."""

    number: int = 1
    tokens: int = 0
    ifs: int = 0

    def count(self, kind: str, lexeme: str) -> None:
        self.tokens += 1
        if self.tokens == 1 and self.number > MAX_POLICIES:
            raise _refuse(f"There are too many policies: {MAX_POLICIES} at most.")
        if self.tokens > MAX_POLICY_TOKENS:
            raise _refuse(
                f"Policy #{self.number} has too many tokens: {MAX_POLICY_TOKENS} at most."
            )
        if kind == "word" and lexeme == "if":
            self.ifs += 1
            if self.ifs > MAX_POLICY_IFS:
                raise _refuse(
                    f"Policy #{self.number} has too many `if`s: {MAX_POLICY_IFS} at most."
                )


def _tokens(text: str) -> Iterator[tuple[str, str, int]]:
    """(kind, token, where it ends) for every token of `text`; whitespace and comments are
    skipped."""
    for found in _TOKEN.finditer(text):
        kind = found.lastgroup or "other"  # An outer group closes last: never "end".
        if kind == "string" and found.group("end") != '"':
            raise _refuse("The policies do not parse: a string literal is not closed.")
        if kind not in ("space", "comment"):
            yield kind, found.group(), found.end()


def split_policies(text: str) -> list[str]:
    """`text` cut after each `;` that ends a policy (outside brackets, strings and comments):
    the pieces, joined, are `text`; each but perhaps the last holds one policy."""
    pieces: list[str] = []
    start, depth = 0, 0
    for kind, lexeme, end in _tokens(text):
        if kind == "other":
            depth = _nest(depth, lexeme, len(pieces) + 1)
            if lexeme == ";" and depth == 0:
                pieces.append(text[start:end])
                start = end
    return [*pieces, text[start:]] if text[start:] else pieces


def check_text(text: str) -> None:
    """Refuse (`InvalidRequest`) Cedar text that is too large or nests too deeply to parse."""
    if len(text.encode()) > MAX_BYTES:
        raise _refuse(f"The policies are too long: {MAX_BYTES // 1024} KiB at most.")
    depth, policy = 0, _Policy()
    for count, (kind, lexeme, _) in enumerate(_tokens(text), start=1):
        if count > MAX_TOKENS:
            raise _refuse(f"The policies have too many tokens: {MAX_TOKENS} at most.")
        policy.count(kind, lexeme)
        if kind == "other":
            depth = _nest(depth, lexeme, policy.number)
            if lexeme == ";" and depth == 0:
                policy = _Policy(number=policy.number + 1)


def _nest(depth: int, lexeme: str, number: int) -> int:
    if lexeme in _OPEN:
        depth += 1
        if depth > MAX_NESTING:
            raise _refuse(
                f"Policy #{number} nests brackets too deeply: {MAX_NESTING} levels at most."
            )
    elif lexeme in _CLOSE:
        depth = max(depth - 1, 0)  # An unbalanced bracket is the parser's to report.
    return depth


def json_depth(value: Any) -> int:
    """How many levels of objects and arrays `value` nests; iterative, so any depth is safe."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


def check_depth(name: str, policy: Any) -> None:
    """Refuse a parsed policy (its JSON form) deeper than Cedar can load."""
    if json_depth(policy) > MAX_JSON_DEPTH:
        raise _refuse(
            f"Policy '{name}' nests too deeply: {MAX_JSON_DEPTH} levels of Cedar's JSON form "
            "at most (about 60 nested operators, calls or brackets)."
        )
