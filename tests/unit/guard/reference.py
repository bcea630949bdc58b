"""Plain reference implementations the tests check `bulkhead.guard` against (STYLE rule 15)."""

from __future__ import annotations


def luhn_complete(body: str) -> str:
    """Append the digit that makes `body` Luhn-valid, by trying each."""
    for check in "0123456789":
        digits = [int(c) for c in reversed(body + check)]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2)
                    for i, d in enumerate(digits))  # fmt: skip
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable")
