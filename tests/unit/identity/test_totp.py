"""TOTP: the RFC 6238 Appendix B vectors, drift window and replay refusal."""

from __future__ import annotations

import pytest

from bulkhead.errors import Unauthenticated
from bulkhead.identity import totp

SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
# RFC 6238 Appendix B: (time, T as hex, TOTP, mode).
VECTORS = [
    (59, "0000000000000001", "94287082", "SHA1"),
    (59, "0000000000000001", "46119246", "SHA256"),
    (59, "0000000000000001", "90693936", "SHA512"),
    (1111111109, "00000000023523EC", "07081804", "SHA1"),
    (1111111109, "00000000023523EC", "68084774", "SHA256"),
    (1111111109, "00000000023523EC", "25091201", "SHA512"),
    (1111111111, "00000000023523ED", "14050471", "SHA1"),
    (1111111111, "00000000023523ED", "67062674", "SHA256"),
    (1111111111, "00000000023523ED", "99943326", "SHA512"),
    (1234567890, "000000000273EF07", "89005924", "SHA1"),
    (1234567890, "000000000273EF07", "91819424", "SHA256"),
    (1234567890, "000000000273EF07", "93441116", "SHA512"),
    (2000000000, "0000000003F940AA", "69279037", "SHA1"),
    (2000000000, "0000000003F940AA", "90698825", "SHA256"),
    (2000000000, "0000000003F940AA", "38618901", "SHA512"),
    (20000000000, "0000000027BC86AA", "65353130", "SHA1"),
    (20000000000, "0000000027BC86AA", "77737706", "SHA256"),
    (20000000000, "0000000027BC86AA", "47863826", "SHA512"),
]


@pytest.mark.parametrize(("when", "step", "code", "mode"), VECTORS)
def test_rfc6238_appendix_b(when: int, step: str, code: str, mode: str) -> None:
    assert totp.step_at(when) == int(step, 16)
    assert totp.totp(SEEDS[mode], when, digits=8, algorithm=mode) == code


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
