"""`quiet`: the scanner's fast path rules out only texts in which no detector finds anything.

The gate is exact, not a heuristic: a quiet text gives the same (empty) findings as the
full scan.  Checked three ways: texts with a finding made of letters alone (no digit, `@`,
`:`, `=` or `>`) are never quiet; random texts built from near-misses of every detector
give the same findings with the gate as without it; and the detectors are the ones the
gate was written for, so a new one cannot slip past it unnoticed.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.guard import EntityScanner
from bulkhead.guard._pii import pii_detectors
from bulkhead.guard._scan import quiet
from bulkhead.guard._secrets import secret_detectors

SCANNER = EntityScanner()

# Findings without a digit, `@`, `:`, `=` or `>`: each passes the gate by a word of its own.
LETTERS_ONLY = [
    "Authorization Bearer AbCdEfGhIjKlMnOpQrStUvWxYz",
    "send it with Basic dXNlcjpwYXNz please",
    "twilio sid ACabcdefabcdefabcdefabcdefabcdefab here",
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "the key SG.AbCdEfGhIjKlMnOp.AbCdEfGhIjKlMnOpQrSt ok",
    "abcQ~AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEf more",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG\n-----END PRIVATE KEY-----",
]


@pytest.mark.parametrize("text", LETTERS_ONLY)
def test_a_finding_of_letters_alone_is_never_quiet(text: str) -> None:
    assert SCANNER._find(text), "the sample must hold a finding for this test to mean anything"
    assert not quiet(text)
    assert SCANNER.find(text) == SCANNER._find(text)


def test_prose_without_any_gate_is_quiet() -> None:
    assert quiet("lorem ipsum dolor sit amet, consectetur adipiscing elit. Sure; the rest. ")
    assert not quiet("call me on 415 555 0100")  # a digit
    assert not quiet("café")  # not ASCII: full-width digits, Chinese labels


# Pieces that come near every detector: labels, prefixes, separators, letter runs, digits.
_NEAR = [
    "password", "passwd", "secret", "token", "api key", "Bearer ", "BEARER ", "basic ",
    "Basic ", "AKIA", "ASIA", "sk-", "ghp_", "hf_", "SG.", "Q~", "AC", "eyJ", "PRIVATE KEY",
    "-----BEGIN ", "passport", "Reisepass", "aws secret access key", "AccountKey", "sig",
    " is ", " ", ".", ",", "-", "_", "~", "/", "+", "'", '"', "<", ">", "=", ":", "@", "\n",
    "AbCdEfGhIjKlMnOpQrSt", "abcdefabcdefabcdef", "dXNlcjpwYXNz", "hunter", "4111", "1111",
    "0100", "415", "example.com", "GB82WEST", "12345678", "DB_PASSWORD", "http://", "x",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_NEAR), max_size=24))
def test_the_gate_never_changes_what_is_found(parts: list[str]) -> None:
    text = "".join(parts)
    assert SCANNER.find(text) == SCANNER._find(text)
    if quiet(text):
        assert SCANNER._find(text) == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120))
def test_the_gate_on_any_printable_ascii(text: str) -> None:
    assert SCANNER.find(text) == SCANNER._find(text)


def test_the_gate_knows_every_detector() -> None:
    """`quiet` lists each detector's gate; one added to the scanner needs its gate there
    (and a sample in `LETTERS_ONLY` if letters alone can make its finding)."""
    names = {type(d).__name__ for d in (*secret_detectors(), *pii_detectors())}
    assert names == {
        "PrivateKeyDetector", "JwtDetector", "BearerTokenDetector", "ApiKeyDetector",
        "AwsSecretDetector", "CloudCredentialDetector", "CredentialDetector", "EmailDetector",
        "PrcIdDetector", "CardDetector", "BankAccountDetector", "PassportDetector",
        "IbanDetector", "PhoneDetector", "Ipv4Detector", "Ipv6Detector",
    }  # fmt: skip
