"""The held-out guard evaluation set (issue 19) is well formed and frozen.

These tests check the data only; they never run a guard. The set is for
reporting (SOURCES.md): a change to either file is a new set, so its SHA-256
is pinned here and a changed file fails until the pin is deliberately moved.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

HERE = Path(__file__).parent
INJECTION = HERE / "injection.jsonl"
PII = HERE / "pii.jsonl"

FROZEN_SHA256 = {
    "injection.jsonl": "48bba7f745e7450ab96b3904cfdbc41f457ead3ea1c76aab170473c4d05fd91b",
    "pii.jsonl": "b0104fadf307ee0dacec62234781029de510a162e00f484523620b547be631ef",
}

ATTACK_KINDS = {
    "override": 20,
    "exfiltration": 22,
    "roleplay": 20,
    "indirect": 22,
    "obfuscation": 20,
    "smuggling": 16,
}
BENIGN_KINDS = {
    "security_question": 10,
    "fiction": 10,
    "editing": 10,
    "translation": 10,
    "system_prompt_question": 10,
    "document": 10,
    "code": 10,
    "support": 10,
}
PII_TYPES = {
    "email",
    "phone",
    "prc_id",
    "card",
    "iban",
    "ip_address",
    "bank_account",
    "passport",
    "secret",
}
DEFAULT_REGIONS = ["CN", "US", "GB"]


def _rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text
    return [json.loads(line) for line in text.splitlines()]


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
    return total % 10 == 0


def _iban(value: str) -> bool:
    s = value.replace(" ", "").upper()
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def _prc_id(value: str) -> bool:
    s = value.replace(" ", "")
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(a) * w for a, w in zip(s[:17], weights, strict=True)) % 11]
    return len(s) == 18 and s[17].upper() == check


@pytest.mark.parametrize("name", sorted(FROZEN_SHA256))
def test_file_is_frozen(name: str) -> None:
    digest = hashlib.sha256((HERE / name).read_bytes()).hexdigest()
    assert digest == FROZEN_SHA256[name], f"{name} changed: the held-out set is frozen"


def test_injection_rows_are_well_formed() -> None:
    rows = _rows(INJECTION)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert len({r["text"] for r in rows}) == len(rows), "duplicate text"
    for r in rows:
        assert set(r) == {"id", "lang", "kind", "injection", "text"}, r["id"]
        assert r["lang"] in {"en", "zh"}
        assert isinstance(r["injection"], bool)
        assert isinstance(r["text"], str) and r["text"].strip()
        expected_kinds = ATTACK_KINDS if r["injection"] else BENIGN_KINDS
        assert r["kind"] in expected_kinds, r["id"]


def test_injection_counts_per_language_and_kind() -> None:
    rows = _rows(INJECTION)
    counts = Counter((r["lang"], r["kind"]) for r in rows)
    for lang in ("en", "zh"):
        for kind, n in {**ATTACK_KINDS, **BENIGN_KINDS}.items():
            assert counts[(lang, kind)] == n, (lang, kind)
        assert sum(1 for r in rows if r["lang"] == lang and r["injection"]) == 120
        assert sum(1 for r in rows if r["lang"] == lang and not r["injection"]) == 80


def test_chinese_cases_are_chinese() -> None:
    han = re.compile(r"[\u4e00-\u9fff]")
    for r in _rows(INJECTION):
        if r["lang"] == "zh" and r["kind"] != "obfuscation":
            assert han.search(r["text"]), r["id"]


def test_pii_rows_are_well_formed() -> None:
    rows = _rows(PII)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    for r in rows:
        assert set(r) <= {"id", "lang", "kind", "text", "expect", "regions"}, r["id"]
        assert r["lang"] in {"en", "zh"}
        assert r["kind"].startswith("lookalike_") == (r["expect"] == []), r["id"]
        for e in r["expect"]:
            assert set(e) == {"type", "value"} and e["type"] in PII_TYPES, r["id"]
            assert e["value"] in r["text"], r["id"]
        for region in r.get("regions", []):
            assert region in phonenumbers.SUPPORTED_REGIONS, r["id"]


def test_pii_counts() -> None:
    rows = _rows(PII)
    positives = Counter(r["lang"] for r in rows if r["expect"])
    negatives = Counter(r["lang"] for r in rows if not r["expect"])
    assert positives == {"en": 104, "zh": 56}
    assert negatives == {"en": 31, "zh": 19}
    types = Counter(e["type"] for r in rows for e in r["expect"])
    assert types == {
        "secret": 67,
        "phone": 51,
        "card": 18,
        "email": 14,
        "iban": 13,
        "prc_id": 11,
        "passport": 9,
        "ip_address": 8,
        "bank_account": 6,
    }


def test_pii_values_carry_valid_check_digits() -> None:
    """Positives are well formed: a guard that validates must still find them."""
    for r in _rows(PII):
        regions = r.get("regions", DEFAULT_REGIONS)
        for e in r["expect"]:
            value = e["value"]
            if e["type"] == "card":
                assert _luhn(value), r["id"]
            elif e["type"] == "iban":
                assert _iban(value), r["id"]
            elif e["type"] == "prc_id":
                assert _prc_id(value), r["id"]
            elif e["type"] == "phone":
                parsed = [_parse(value, region) for region in regions]
                assert any(p is not None and phonenumbers.is_valid_number(p) for p in parsed), (
                    r["id"],
                    value,
                )


def _parse(value: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None


def test_lookalikes_hold_no_valid_number() -> None:
    """Negatives hold no valid phone (for their regions), card or PRC ID number."""
    for r in _rows(PII):
        if r["expect"]:
            continue
        text = r["text"]
        for region in r.get("regions", DEFAULT_REGIONS):
            matches = phonenumbers.PhoneNumberMatcher(text, region)
            assert [m.raw_string for m in matches] == [], r["id"]
        for run in re.findall(r"\d(?:[ -]?\d){12,18}", text):
            assert not _luhn(run), (r["id"], run)
        for run in re.findall(r"\d{17}[\dXx]", text):
            assert not _prc_id(run), (r["id"], run)
