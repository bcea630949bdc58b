"""TOTP: the RFC 6238 Appendix B vectors (tests/vectors/totp/), drift window and replay refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bulkhead.errors import Unauthenticated
from bulkhead.identity import totp

VECTORS_FILE = Path(__file__).parents[2] / "vectors" / "totp" / "rfc6238-appendix-b.json"
APPENDIX_B = json.loads(VECTORS_FILE.read_text())
SEEDS = {mode: seed.encode() for mode, seed in APPENDIX_B["seeds_ascii"].items()}


@pytest.mark.parametrize("vector", APPENDIX_B["vectors"], ids=lambda v: f"{v['mode']}-{v['time']}")
def test_rfc6238_appendix_b(vector: dict[str, Any]) -> None:
    assert totp.step_at(vector["time"]) == int(vector["step_hex"], 16)
    code = totp.totp(SEEDS[vector["mode"]], vector["time"], digits=8, algorithm=vector["mode"])
    assert code == vector["totp"]


def test_the_whole_appendix_b_table_is_there() -> None:
    assert len(APPENDIX_B["vectors"]) == 18
    assert {v["mode"] for v in APPENDIX_B["vectors"]} == set(SEEDS) == {"SHA1", "SHA256", "SHA512"}


SECRET = SEEDS["SHA1"]
NOW = 1_700_000_000.0


def test_a_current_code_verifies_and_returns_its_step() -> None:
    code = totp.totp(SECRET, NOW)
    assert totp.verify(SECRET, code, last_step=None, now=NOW) == totp.step_at(NOW)


@pytest.mark.parametrize("drift", [-30, 30])
def test_one_step_of_drift_either_way_is_accepted(drift: int) -> None:
    code = totp.totp(SECRET, NOW + drift)
    assert totp.verify(SECRET, code, last_step=None, now=NOW) == totp.step_at(NOW + drift)


@pytest.mark.parametrize("drift", [-90, -60, 60, 90])
def test_codes_further_away_are_refused(drift: int) -> None:
    with pytest.raises(Unauthenticated):
        totp.verify(SECRET, totp.totp(SECRET, NOW + drift), last_step=None, now=NOW)


def test_the_same_code_is_refused_the_second_time() -> None:
    code = totp.totp(SECRET, NOW)
    used = totp.verify(SECRET, code, last_step=None, now=NOW)
    with pytest.raises(Unauthenticated):
        totp.verify(SECRET, code, last_step=used, now=NOW)


def test_an_older_code_is_refused_after_a_newer_one() -> None:
    newer = totp.verify(SECRET, totp.totp(SECRET, NOW), last_step=None, now=NOW)
    with pytest.raises(Unauthenticated):
        totp.verify(SECRET, totp.totp(SECRET, NOW - 30), last_step=newer, now=NOW)


@pytest.mark.parametrize("bad", ["", "12345", "abcdef", "1234567"])
def test_malformed_codes_are_refused(bad: str) -> None:
    with pytest.raises(Unauthenticated):
        totp.verify(SECRET, bad, last_step=None, now=NOW)


def test_otpauth_uri_carries_the_secret_in_base32() -> None:
    uri = totp.otpauth_uri(SECRET, account="acme/alice")
    assert uri.startswith("otpauth://totp/Bulkhead%3Aacme/alice?")
    assert "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" in uri
