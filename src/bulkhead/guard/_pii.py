"""Detectors of personal data: a regex finds candidates, a checksum or parser confirms them.

Boundaries are ASCII look-arounds, not `\\b`: Chinese text puts no space
around a number ("身份证号是11010519491231002X谢谢"), and `\\b` treats CJK
characters as word characters, so it would miss exactly those.  Digits are
`[0-9]`, never `\\d`, which would also match other scripts' digits.

Numbers are the expensive part of a scan, so the numeric detectors (ID,
card, phone, IPv4) search only the windows around runs of seven or more
digit-like characters, all of a text's windows in one call (`_detector`), and
only those windows with at least their `min_digits` ASCII digits.  Ordinary
prose has few such runs.  Validation is written for speed (a text full of entities
runs it for each): byte sums for the check digits, one search before several.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import string
from collections.abc import Callable, Iterator
from typing import Any

import regex

from bulkhead.guard._accounts import BankAccountDetector, PassportDetector
from bulkhead.guard._checksums import iban_valid, luhn_valid, prc_id_valid
from bulkhead.guard._detector import CAPS_DIGITS, SHAPES, Detector, Windows
from bulkhead.guard._entities import Entity, Finding

_LEFT = r"(?<![0-9A-Za-z])"
_RIGHT = r"(?![0-9A-Za-z])"

# Labels that say the number after them is a reference, not a person's
# number ("订单号 13800138000", "invoice no. 415-555-2671").  They silence the
# weakly validated entities (phones) only: a Luhn-valid card stays a card
# whatever it is called, since that is what someone hiding one would write.
#
# A label is looked for in the few characters before a number and must end
# there, so each is written reversed and matched once, anchored, on those
# characters read backwards: a search for `label$` would try every start.
# Each reads as `(labels)(filler){0,n}$`; `\n?` stands for `$`, which also
# matches before a final newline.  tests/unit/guard/test_pii_speed.py checks
# them against the forward forms.
_REFERENCE_LABEL = re.compile(
    r"(?i)\n?[\s.:\uff1a#号码no]{0,8}"
    r"(?:redro|eciovni|gnikcart|ecnerefer|fer|laires|uks|tekcit|noitcasnart|nxt|tpiecer|"
    r"lecrap|tnempihs|hctab|op|nbsi|nssi|(?:di\s+)?(?:gniteem|ecnerefnoc|ranibew)|"
    r"单订|号单|票发|号编|水流|递快|单运|次批|号列序|易交|单工|号议会|DI议会)"
)
_PHONE_LABEL = re.compile(
    r"\n?(?:[\s.:\uff1a#,()no]{0,8}(?i:enohp|let|llac|elibom|llec|xaf|ppastahw|tcatnoc|sms)"
    r"|[\s:\uff1a号码是为]{0,4}(?:话电|机手|碼號|码号话电|号机手|話电|帯携|系联))"
)
_VERSION_LABEL = re.compile(r"\n?[\s:\uff1a]{0,3}(?i:v|\.?rev|noisrev|esaeler|dliub|本版|号本版)")


def _labelled(text: str, start: int, label: re.Pattern[str]) -> bool:
    """Whether the few characters before `start` end with `label` (written reversed)."""
    return label.match(text[max(0, start - 16) : start][::-1]) is not None


_NOT_DIGIT = re.compile(r"[^0-9Xx]+")


_SEPARATORS = str.maketrans("", "", " -.()+/")


def _digits(candidate: str) -> str:
    """The ASCII digits (and `X`) of `candidate`, in order."""
    bare = candidate.translate(_SEPARATORS)
    if bare.isascii() and (bare.isdigit() or (bare[:-1].isdigit() and bare[-1] in "Xx")):
        return bare  # the common cases: digits, and an ID's digits and check character
    return _NOT_DIGIT.sub("", bare)


class EmailDetector:
    """RFC 5321 shaped addresses: local part up to 64 characters, a dotted domain, a TLD."""

    entities = frozenset({Entity.EMAIL})
    numeric = False
    min_digits = 0
    # Matched (anchored) at one place per `@`, where `re` costs a third of what `regex` does.
    _pattern = re.compile(
        r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
        r"(?![A-Za-z0-9\-])"
    )

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        if "@" not in text:
            return
        for m in self._matches(text, start, len(text) if end is None else end):
            local = m.group().split("@", 1)[0]
            if _url_password(text, m.start()):
                continue  # `scheme://user:pass@host`: a credential (`_credentials`), not an address
            if ".." not in local and not local.endswith("."):
                yield Finding(Entity.EMAIL, m.start(), m.end(), 0.95, True)

    def _matches(self, text: str, start: int, end: int) -> Iterator[re.Match[str]]:
        """What `finditer` would find, tried only where an address can start: the start of
        the run of local-part characters before each `@` (no other position of the run
        passes the look-behind, and a match holds one `@`), if it is 64 or fewer long."""
        searched = start
        at = text.find("@", start, end)
        while at >= 0:
            before = text[max(0, at - 65) : at]
            run = len(before) - len(before.rstrip(_LOCAL_PART))
            if 0 < run <= 64 and at - run >= searched:
                m = self._pattern.match(text, at - run, end)
                if m is not None:
                    yield m
                    searched = m.end()
            at = text.find("@", max(at + 1, searched), end)


_LOCAL_PART = string.ascii_letters + string.digits + "._%+-"
_URL_USER = re.compile(r"://[^\s:/@]{1,128}$")


def _url_password(text: str, start: int) -> bool:
    """Whether `start` follows `scheme://user:` (the text after is a password, then a host)."""
    return (
        start > 0
        and text[start - 1] == ":"
        and bool(_URL_USER.search(text, max(0, start - 132), start - 1))
    )


class PrcIdDetector:
    """PRC resident ID numbers (GB 11643): 6-digit region, birth date, sequence, check char."""

    entities = frozenset({Entity.PRC_ID})
    numeric = True
    min_digits = 17  # seventeen digits and a check character
    # Both forms start where no letter or digit is before a 1-8: tested once, ahead of both.
    _pattern = re.compile(
        _LEFT + r"(?=[1-8])(?:"
        r"[1-8][0-9]{5}[ \-]?(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
        r"(?:0[1-9]|[12][0-9]|3[01])[ \-]?[0-9]{3}[0-9Xx]"
        + _RIGHT
        # or in groups of four (or any grouping) by single spaces or dashes
        + r"|[1-8](?:[ \-]?[0-9]){16}[ \-]?[0-9Xx]"
        + _RIGHT
        + ")"
    )

    def __init__(self, *, today: Callable[[], dt.date] = dt.date.today) -> None:
        self._today = today

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        return iter(self.find_windows(text, ((start, len(text) if end is None else end),)))

    def find_windows(self, text: str, windows: Windows) -> list[Finding]:
        found: list[Finding] = []
        today = None
        for start, end in windows:
            for m in self._pattern.finditer(text, start, end):
                today = today or self._today()
                if prc_id_valid(_digits(m.group()), today=today):
                    found.append(Finding(Entity.PRC_ID, m.start(), m.end(), 1.0, True))
        return found


def card_prefix_plausible(digits: str) -> bool:
    """Issuer ranges in use (ISO/IEC 7812 major industry 2-6): Mastercard 2221-2720, Amex,
    Diners, JCB, Visa, Mastercard/Maestro, Discover, UnionPay (62), RuPay.

    Numbers starting 0, 1, 7, 8 or 9, and 2-series outside 2221-2720, are not
    payment cards: this is what keeps timestamps and most order numbers out.
    """
    first = digits[0]
    if first == "2":
        return 2221 <= int(digits[:4]) <= 2720
    if first == "3":
        return digits[1] in "0456789"
    return first in "456"


class CardDetector:
    """Payment card numbers: 13-19 digits, Luhn-valid, compact or in any grouping by spaces or
    dashes (4-4-4-4, Amex 4-6-5, UnionPay's 19 digits as 6+13 or 4x4+3)."""

    entities = frozenset({Entity.CARD})
    numeric = True
    min_digits = 13  # thirteen to nineteen
    _pattern = re.compile(
        r"(?<![0-9A-Za-z.\-])[0-9]{2,19}(?:[ \-][0-9]{2,15}){0,6}(?![0-9A-Za-z]|[.\-][0-9])"
    )
    _groups = re.compile(r"[0-9]+")

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        return iter(self.find_windows(text, ((start, len(text) if end is None else end),)))

    def find_windows(self, text: str, windows: Windows) -> list[Finding]:
        found: list[Finding] = []
        for start, end in windows:
            for m in self._pattern.finditer(text, start, end):
                if m.end() - m.start() < 13:
                    continue
                span = self._best_span(m.group())
                if span is not None:
                    at = m.start()
                    found.append(Finding(Entity.CARD, at + span[0], at + span[1], 1.0, True))
        return found

    def _best_span(self, candidate: str) -> tuple[int, int] | None:
        """The whole candidate if it is a card, else the longest run of its groups that is.

        "4111 1111 1111 1111 2024" holds a card followed by a year.
        """
        if self._is_card(_digits(candidate)):
            return 0, len(candidate)  # the common case: the whole candidate
        groups = [m.span() for m in self._groups.finditer(candidate)]
        for size in range(len(groups) - 1, 0, -1):
            for first in range(len(groups) - size + 1):
                start, end = groups[first][0], groups[first + size - 1][1]
                if self._is_card(_digits(candidate[start:end])):
                    return start, end
        return None

    @staticmethod
    def _is_card(digits: str) -> bool:
        return 13 <= len(digits) <= 19 and card_prefix_plausible(digits) and luhn_valid(digits)


class _NationalShape:
    """libphonenumber's own necessary condition for a region's numbers (its general pattern),
    checked before the full parse, which costs a hundred times more.
    """

    def __init__(self, region: str) -> None:
        from phonenumbers import PhoneMetadata  # loaded by a phone detector alone

        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None or metadata.general_desc is None:
            raise ValueError(f"no phone metadata for region {region!r}")
        self.prefix = metadata.national_prefix or ""
        self.pattern = re.compile(metadata.general_desc.national_number_pattern or ".*")

    def possible(self, digits: str) -> bool:
        if self.pattern.fullmatch(digits):
            return True
        return (
            bool(self.prefix)
            and digits.startswith(self.prefix)
            and bool(self.pattern.fullmatch(digits[len(self.prefix) :]))
        )


def _cn_mobile_pattern() -> re.Pattern[str]:
    from phonenumbers import PhoneMetadata

    metadata = PhoneMetadata.metadata_for_region("CN")
    assert metadata is not None and metadata.mobile is not None
    return re.compile(metadata.mobile.national_number_pattern or "")


class PhoneDetector:
    """Phone numbers confirmed by libphonenumber: mainland China mobiles (with or without +86),
    international numbers written with `+` or `00`, and separated national formats of `regions`.

    A mainland mobile is checked against libphonenumber's mobile pattern for
    CN directly; other candidates are parsed and validated by it, after a
    cheap check against the region's general pattern.
    """

    entities = frozenset({Entity.PHONE})
    numeric = True
    min_digits = 1  # an international number can be short: every window
    _cn_mobile = re.compile(
        r"(?<![0-9A-Za-z+])(?:(?:\+|00)86[ \-]?|\(\+86\)[ \-]?)?1[3-9][0-9](?:[ \-]?[0-9]{4}){2}"
        + _RIGHT
    )
    _international = re.compile(
        r"(?<![0-9A-Za-z+])(?:\+|00)[1-9][0-9]{0,3}(?:[ \-.]?\(?[0-9]{1,5}\)?){1,6}" + _RIGHT
    )
    # A national number stands alone: one in a longer run of digit groups is
    # part of a card or an account number.
    _national = re.compile(
        r"(?<![0-9A-Za-z.\-])(?<![0-9] )(?:\(0?[0-9]{2,4}\)[ \-]?|0?[0-9]{2,4}[ \-.])"
        r"[0-9]{3,4}[ \-.]?[0-9]{4}(?![0-9A-Za-z]|[ .\-][0-9])"
    )

    # A national number after its trunk prefix (0): Germany's "030 12345678", Japan's
    # "03-1234-5678", a UK mobile "07700 900123", compact or grouped; nine to twelve digits.
    _trunk = re.compile(
        r"(?<![0-9A-Za-z.\-+/])(?<![0-9] )(?:\(0[0-9]{1,5}\)|0[0-9]{1,5})[ \-./]?[0-9]{2,8}"
        r"(?:[ \-.][0-9]{2,4}){0,3}(?![0-9A-Za-z]|[ .\-][0-9])"
    )

    # Ten digits in one run, no trunk prefix (the US "4155552671"): an order number or a
    # timestamp as often, so only after a word that names a phone.
    _compact = re.compile(r"(?<![0-9A-Za-z.\-+/])[2-9][0-9]{9}(?![0-9A-Za-z]|[.\-][0-9])")

    # Any of the four above: one search tells whether a window holds a candidate for them.
    # Each starts where no letter or digit is before it, with `(`, `+` or a digit: tested
    # once ahead of the alternation, that rules most positions out three times faster.
    _others = re.compile(
        r"(?<![0-9A-Za-z])(?=[(+0-9])(?:"
        + "|".join(f"(?:{p.pattern})" for p in (_international, _national, _trunk, _compact))
        + ")"
    )

    def __init__(self, *, regions: tuple[str, ...] = ("CN", "US", "GB")) -> None:
        # libphonenumber (some 60 modules and their metadata) loads with the first phone
        # detector: a guard that finds no phones never loads it.
        import phonenumbers

        self._parse, self._is_valid = phonenumbers.parse, phonenumbers.is_valid_number
        self._unparsable = phonenumbers.NumberParseException
        self._regions = regions
        self._shapes = {region: _NationalShape(region) for region in regions}
        self._mobile = _cn_mobile_pattern()

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        return iter(self.find_windows(text, ((start, len(text) if end is None else end),)))

    def find_windows(self, text: str, windows: Windows) -> list[Finding]:
        found: list[Finding] = []
        for start, end in windows:
            self._find_in(text, start, end, found)
        return found

    def _find_in(self, text: str, start: int, end: int, found: list[Finding]) -> None:
        seen: set[int] = set()
        for m in self._cn_mobile.finditer(text, start, end):
            mobile = _digits(m.group())[-11:]
            if self._mobile.fullmatch(mobile) and not _labelled(text, m.start(), _REFERENCE_LABEL):
                seen.add(m.start())
                found.append(Finding(Entity.PHONE, m.start(), m.end(), 0.9, True))
        if self._others.search(text, start, end) is None:
            return
        searches = (
            (self._international, ()),
            (self._national, self._regions),
            (self._trunk, self._regions),
            (self._compact, self._regions),
        )
        for pattern, regions in searches:
            for m in pattern.finditer(text, start, end):
                if m.start() in seen or _labelled(text, m.start(), _REFERENCE_LABEL):
                    continue
                if pattern is self._trunk and not _trunk_plausible(text, m):
                    continue
                if pattern is self._compact and not _labelled(text, m.start(), _PHONE_LABEL):
                    continue
                if self._valid(m.group(), regions):
                    seen.add(m.start())
                    found.append(Finding(Entity.PHONE, m.start(), m.end(), 0.85, True))

    def _valid(self, candidate: str, regions: tuple[str, ...]) -> bool:
        if candidate.startswith("00"):
            candidate = "+" + candidate[2:]
        digits = _digits(candidate)
        for region in regions or (None,):
            if region is not None and not self._shapes[region].possible(digits):
                continue
            try:
                number = self._parse(candidate, region)
            except self._unparsable:
                continue
            if self._is_valid(number):
                return True
        return False


# France writes its numbers as five pairs ("06.12.34.56.78"), which begin like a date.
_PAIRS = re.compile(r"0[1-9]([ .\-])[0-9]{2}(?:\1[0-9]{2}){3}")
_DATE = re.compile(r"(?:[0-2][0-9]|3[01])([./\-])(?:[0-2][0-9]|3[01])\1[0-9]{2}")


def _trunk_plausible(text: str, m: re.Match[str]) -> bool:
    """Nine to twelve digits (ten or more without a separator), not labelled as a version,
    not a date ("01.02.2024 12:30": day, month and year are two, two and four digits; five
    pairs, "06.12.34.56.78", are a French number)."""
    candidate = m.group()
    if _labelled(text, m.start(), _VERSION_LABEL):
        return False
    if _DATE.match(candidate) and not _PAIRS.fullmatch(candidate):
        return False
    digits = sum(c.isdigit() for c in candidate)
    return 9 <= digits <= 12 and (digits >= 10 or not candidate.isdigit())


class IbanDetector:
    """International bank account numbers, compact or in groups of four (ISO 13616)."""

    entities = frozenset({Entity.IBAN})
    numeric = False
    min_digits = 0
    _pattern = regex.compile(
        _LEFT + r"[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?" + _RIGHT
    )

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        if text.isascii() and CAPS_DIGITS not in text.encode("ascii").translate(SHAPES):
            return  # no two capitals before two digits, which every IBAN starts with
        for m in self._pattern.finditer(text, start, len(text) if end is None else end):
            if iban_valid(m.group().replace(" ", "")):
                yield Finding(Entity.IBAN, m.start(), m.end(), 1.0, True)


def _address_ok(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


class Ipv4Detector:
    """IPv4 addresses that `ipaddress` accepts, except loopback and unspecified ones, and
    dotted quads labelled as versions ("version 1.2.3.4").
    """

    entities = frozenset({Entity.IP_ADDRESS})
    numeric = True
    min_digits = 4
    _pattern = re.compile(r"(?<![0-9A-Za-z.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9A-Za-z]|\.[0-9])")

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        return iter(self.find_windows(text, ((start, len(text) if end is None else end),)))

    def find_windows(self, text: str, windows: Windows) -> list[Finding]:
        found: list[Finding] = []
        for start, end in windows:
            if text.count(".", start, end) < 3:
                continue  # an address holds three
            for m in self._pattern.finditer(text, start, end):
                if not _labelled(text, m.start(), _VERSION_LABEL) and _address_ok(m.group()):
                    found.append(Finding(Entity.IP_ADDRESS, m.start(), m.end(), 0.9, True))
        return found


class Ipv6Detector:
    """IPv6 addresses (with an optional zone) that `ipaddress` accepts, except `::` and `::1`;
    searched only around colons, which prose has few of.
    """

    entities = frozenset({Entity.IP_ADDRESS})
    numeric = False
    min_digits = 0
    _pattern = re.compile(
        r"(?<![0-9A-Za-z:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}"
        r"(?:(?<=:)(?:[0-9]{1,3}\.){3}[0-9]{1,3})?(?:%[0-9A-Za-z]{1,15})?(?![0-9A-Za-z:.])"
    )
    _colons = re.compile(r":(?=[0-9A-Fa-f:])")
    _run = re.compile(r"[0-9A-Fa-f:.%]*")

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        end = len(text) if end is None else end
        searched = start
        for hint in self._colons.finditer(text, start, end):
            if hint.start() < searched:
                continue
            # The first colon of an address is within five characters of its start;
            # the window then runs to the end of the address-like run.
            lo = max(searched, hint.start() - 5)
            run = self._run.match(text, min(end, hint.start() + 48), end)
            hi = run.end() if run else end
            for m in self._pattern.finditer(text, lo, hi):
                if _address_ok(m.group().split("%", 1)[0]):
                    yield Finding(Entity.IP_ADDRESS, m.start(), m.end(), 0.9, True)
            searched = hi


def pii_detectors(
    *, phone_regions: tuple[str, ...] = ("CN", "US", "GB"),
    today: Callable[[], dt.date] = dt.date.today,
    wanted: frozenset[Entity] = frozenset(Entity),
) -> tuple[Detector, ...]:  # fmt: skip
    """The personal-data detectors that find one of `wanted`, in the order that breaks ties
    (an ID before a card, a card before the bank account its label names); one not wanted
    is not made (a phone detector loads libphonenumber)."""
    kinds: tuple[tuple[type[Any], dict[str, Any]], ...] = (
        (EmailDetector, {}),
        (PrcIdDetector, {"today": today}),
        (CardDetector, {}),
        (BankAccountDetector, {}),
        (PassportDetector, {}),
        (IbanDetector, {}),
        (PhoneDetector, {"regions": phone_regions}),
        (Ipv4Detector, {}),
        (Ipv6Detector, {}),
    )
    return tuple(kind(**given) for kind, given in kinds if kind.entities & wanted)
