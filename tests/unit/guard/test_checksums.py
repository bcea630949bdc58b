# ruff: noqa: RUF001 - test texts are Chinese, with its full-width punctuation, on purpose.
"""Check digits: Luhn (ISO/IEC 7812), GB 11643 resident IDs, ISO 13616 IBANs."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkhead.guard import iban_valid, luhn_valid, prc_id_check_char, prc_id_valid
from tests.unit.guard.reference import luhn_complete


@pytest.mark.parametrize("length", range(13, 20))
def test_luhn_valid_and_invalid_at_every_card_length(length: int) -> None:
    body = ("4" + "1234567890" * 2)[: length - 1]
    valid = luhn_complete(body)
    assert len(valid) == length and luhn_valid(valid)
    for wrong in "0123456789":
        if wrong != valid[-1]:
            assert not luhn_valid(body + wrong)


@pytest.mark.parametrize(
    "number",
    ["79927398713", "4111111111111111", "5555555555554444", "378282246310005",
     "6011111111111117", "6212345678901232", "3530111333300000"],
)  # fmt: skip
def test_luhn_known_valid_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("text", ["", "4111-1111", "41111111111111x1", "４１１１"])
def test_luhn_refuses_non_digits(text: str) -> None:
    assert not luhn_valid(text)


@given(st.text(alphabet="0123456789", min_size=12, max_size=18))
def test_exactly_one_check_digit_completes_any_body(body: str) -> None:
    assert sum(luhn_valid(body + d) for d in "0123456789") == 1


def test_single_digit_errors_are_always_caught() -> None:
    number = luhn_complete("622202020011223344")
    for i in range(len(number)):
        for d in "0123456789":
            if d != number[i]:
                assert not luhn_valid(number[:i] + d + number[i + 1 :])


def test_prc_check_char_matches_the_standard_example() -> None:
    # GB 11643-1999's worked example, and one computed by hand.
    assert prc_id_check_char("11010519491231002") == "X"
    assert prc_id_check_char("44052418800101001") == "4"


@pytest.mark.parametrize(
    "number", ["11010519491231002X", "11010519491231002x", "440524198801010011"]
)
def test_prc_valid_ids(number: str) -> None:
    assert prc_id_valid(number)


def test_every_wrong_check_char_is_refused() -> None:
    for wrong in "0123456789X":
        if wrong != "X":
            assert not prc_id_valid("11010519491231002" + wrong)


@pytest.mark.parametrize(
    "number",
    [
        "110105194902300015",  # 30 February
        "110105189912310012",  # before 1900
        "01010519491231002X",  # region cannot start with 0
        "1101051949123100",  # too short
        "11010519491231002XX",  # too long
        "1101051949123100２X",  # a full-width digit
    ],
)
def test_prc_refuses_malformed_ids(number: str) -> None:
    assert not prc_id_valid(number)


def test_prc_birth_date_may_not_be_in_the_future() -> None:
    first17 = "11010520300101001"
    number = first17 + prc_id_check_char(first17)
    assert not prc_id_valid(number, today=dt.date(2026, 1, 1))
    assert prc_id_valid(number, today=dt.date(2031, 1, 1))


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_prc_check_char_is_the_only_valid_last_char(first17: str) -> None:
    valid = [c for c in "0123456789X" if prc_id_check_char(first17) == c]
    assert len(valid) == 1


# Examples from the SWIFT IBAN registry.
IBAN_VALID = [
    "GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606",
    "NL91ABNA0417164300", "CH9300762011623852957", "BE68539007547034", "gb82west12345698765432",
]  # fmt: skip


@pytest.mark.parametrize("iban", IBAN_VALID)
def test_iban_valid(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize(
    "iban",
    [
        "GB83WEST12345698765432",  # check digits off by one
        "GB82WEST1234569876543",  # one short for GB
        "XX82WEST12345698765432",  # no such country
        "GB82 WEST 1234 5698 7654 32",  # spaces are the detector's business
        "GBAAWEST12345698765432",  # check digits not digits
    ],
)
def test_iban_invalid(iban: str) -> None:
    assert not iban_valid(iban)


def test_iban_single_character_change_is_caught() -> None:
    iban = "DE89370400440532013000"
    for i in range(4, len(iban)):
        changed = iban[:i] + str((int(iban[i]) + 1) % 10) + iban[i + 1 :]
        assert not iban_valid(changed)
