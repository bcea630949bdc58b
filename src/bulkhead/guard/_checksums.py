"""Check digits that tell a real identifier from a number that merely looks like one.

Each function takes the bare identifier (no spaces or dashes) and returns
whether it is well-formed; detectors call them on regex candidates.
"""

from __future__ import annotations

import datetime as dt
from operator import mul

# GB 11643-1999 §5.2 (ISO 7064 MOD 11-2): weights of the first 17 digits, and the
# check character for each remainder of their weighted sum mod 11.
_PRC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_PRC_CHECK = "10X98765432"
_PRC_ZERO = 48 * sum(_PRC_WEIGHTS)

# ISO 13616 lengths per country (SWIFT IBAN registry); an IBAN of another
# length for its country is refused before the mod-97 check.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    """ISO/IEC 7812-1 Annex B (Luhn): the check digit of payment card numbers."""
    if not digits.isascii() or not digits.isdigit():
        return False
    # From the right, every second digit is doubled, less 9 when over 9.  An ASCII
    # digit's byte is 48 more than its value, so a sum of bytes is a sum of digits.
    plain = digits[-1::-2]
    doubled = digits[-2::-2].translate(_LUHN_DOUBLED)
    total = sum(plain.encode()) + sum(doubled.encode()) - 48 * len(digits)
    return total % 10 == 0


_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")


def aba_valid(digits: str) -> bool:
    """An ABA routing transit number (US): nine digits, 3-7-1 weighted sum divisible by 10,
    and a Federal Reserve prefix (01-12, 21-32, 61-72, 80)."""
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        return False
    prefix = int(digits[:2])
    if not (1 <= prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80):
        return False
    total = sum(int(c) * w for c, w in zip(digits, (3, 7, 1) * 3, strict=True))
    return total % 10 == 0


def prc_id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of a resident ID."""
    total = sum((ord(c) - 48) * w for c, w in zip(first17, _PRC_WEIGHTS, strict=True))
    return _PRC_CHECK[total % 11]


def prc_id_valid(number: str, *, today: dt.date | None = None) -> bool:
    """An 18-character PRC resident ID: region, a real birth date, and the right check char.

    The birth date (characters 7-14) must be a calendar date from 1900 up to
    `today`; the last character may be `X` or `x`.
    """
    if len(number) != 18 or not number.isascii() or not number[:17].isdigit():
        return False
    if number[0] == "0" or not _plausible_birth(number[6:14], today or dt.date.today()):
        return False
    # The bytes of 17 ASCII digits, weighted, add `_PRC_ZERO` over their values.
    total = sum(map(mul, number[:17].encode(), _PRC_WEIGHTS)) - _PRC_ZERO
    return _PRC_CHECK[total % 11] == number[17].upper()


def _plausible_birth(yyyymmdd: str, today: dt.date) -> bool:
    try:
        born = dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return False
    return _FIRST_BIRTH <= born <= today


_FIRST_BIRTH = dt.date(1900, 1, 1)


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length and ISO 7064 MOD 97-10 over the rearranged string."""
    iban = iban.upper()
    if not iban.isascii() or not iban.isalnum() or IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    if not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    # Letters count as two digits: A = 10 ... Z = 35 (ISO 13616-1 §7.1).
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1
