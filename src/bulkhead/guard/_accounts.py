# ruff: noqa: RUF002 - Chinese text in the docstring keeps its punctuation.
"""Detectors of identifiers that only their label tells apart: bank accounts and passports.

An account number carries no check digit a detector could test, and
"E12345678" is a part number as often as a passport: these count only after
a word that names them, a few characters before ("银行卡号", "账号", "对公账户",
"account number", "sort code", "routing number", "口座番号", "普通", "护照号码",
"passport no.").  What each label admits:

- a card label (银行卡, 卡号, 借记卡, 信用卡): 16-19 digits that pass the Luhn
  check, as every card issued in China (UnionPay, ISO/IEC 7812) does;
- an account label (账号, 账户, 对公账户, "account number", "acct", "a/c",
  口座番号, 普通/当座): 6-25 digits, the lengths in use from Japan's seven to
  Chinese corporate accounts' twenty-odd;
- a bare "account" only where the text also speaks of a bank ("bank",
  "sort code", "routing", "branch", 銀行, 支店): "AWS account 123456789012"
  and "account 12345678 of 2024" stay as they are;
- "sort code": a UK sort code (`12-34-56`), with the account number after it;
- "routing number", "ABA", "RTN": nine digits that pass the ABA checksum;
- a passport label (passport, 护照, 護照, 旅券, Reisepass, passeport ...):
  the passport-shaped tokens that follow, 7-10 capitals and digits with at
  least five digits (US and UK nine digits, `C01X00T47`, `12AB34567`,
  `TR1234567`, `E12345678`, `EA1234567`).

A reference label between the word and the number ("账号已冻结，订单号 …",
"passport photos: order 123456789") and an amount ("账户余额 …", "balance")
win over the account word.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bulkhead.guard._checksums import aba_valid, luhn_valid
from bulkhead.guard._detector import Windows
from bulkhead.guard._entities import Entity, Finding

_CARD, _STRONG, _WEAK = "card", "account", "weak"
_LABEL_WORDS: tuple[tuple[str, str], ...] = (
    *((w, _CARD) for w in ("银行卡", "卡号", "借记卡", "储蓄卡", "信用卡", "bank card")),
    ("bankcard", _CARD),
    *((w, _STRONG) for w in ("账号", "帐号", "账户", "帐户", "户号", "口座番号", "口座", "預金")),
    *(
        (f"{kind} account", _STRONG)
        for kind in ("bank", "checking", "savings", "current", "deposit", "business")
    ),
    *((f"account {no}", _STRONG) for no in ("number", "no", "num", "#")),
    *((w, _STRONG) for w in ("acct", "a/c", "routing and account", "routing & account")),
    *((w, _WEAK) for w in ("普通", "当座", "account")),
)  # fmt: skip
"""Label words (lower case) and what they admit; where two end together the longer wins."""
_HINTS = ("卡", "账", "帐", "户", "口座", "普通", "当座", "預金", "card", "account", "acct", "a/c")
# Every word `BankAccountDetector.find` looks for near a number, in one alternation.
_ANY_WORD = re.compile(
    "|".join(map(re.escape, ("sort", "s/c", "routing", "aba", "rtn", "transit", *_HINTS)))
)
_FILLER = re.compile(r"[^0-9\n]{0,16}")
# A bare "account" counts only in a text that speaks of a bank.
_BANK_CONTEXT = re.compile(
    r"银行|开户|銀行|支店|口座|預金|店番|(?i:bank|sort\s?code|routing|aba|swift|bic|branch|beneficiary"
    r"|wire|payee|deposit)"
)
_NOT_BANK = re.compile(r"(?i:aws|cloud|account\s+id|user|login|game|player|member)")
# A reference label or an amount between the account word and the number wins.
_REFERENCE = re.compile(
    r"订单|单号|发票|编号|流水|快递|运单|余额|金额|(?i:order|invoice|tracking|ref|balance|amount"
    r"|total|id\b)"
)
_ACCOUNT = re.compile(
    r"(?<![0-9A-Za-z.\-])[0-9]{2,25}(?:[ \-][0-9]{1,15}){0,5}(?![0-9A-Za-z]|[.,][0-9])"
)
_SORT_CODE = re.compile(
    r"(?<![0-9A-Za-z.\-])[0-9]{2}([ \-]?)[0-9]{2}\1[0-9]{2}"
    r"(?:[ ,/;]{1,3}(?:(?i:a/c|acct\.?|account(?:\s+(?:number|no\.?))?)[\s:#.]{0,3})?[0-9]{8})?"
    r"(?![0-9A-Za-z]|[.\-][0-9])"
)
_SORT_LABEL = re.compile(r"(?i:sort[\s\-]?code|s/c)[^0-9\n]{0,24}$")
_ROUTING = re.compile(r"(?<![0-9A-Za-z.\-])[0-9]{9}(?![0-9A-Za-z]|[.\-][0-9])")
_ROUTING_LABEL = re.compile(
    r"(?i:routing(?:\s+(?:transit\s+)?(?:number|no\.?|#))?|\baba(?:\s+(?:number|no\.?|#))?"
    r"|\brtn|transit\s+number)[^0-9A-Za-z\n]{0,6}(?:(?i:is)\s+)?$"
)
_AMOUNT_AFTER = re.compile(r"\s?(?:元|円|块|万|%|(?i:usd|rmb|cny|eur|gbp|yen|dollars))")


# Each label word reversed, longest first: searched in the reversed text, the first match is
# the word that ends last, the longest of those that end there.
_LABELS_BACKWARDS = re.compile(
    "|".join(re.escape(w[::-1]) for w, _ in sorted(_LABEL_WORDS, key=lambda p: -len(p[0])))
)
_KIND_OF = {word: kind for word, kind in reversed(_LABEL_WORDS)}


def _label(before: str) -> tuple[str, int] | None:
    """The label word that ends last in `before` (lower case), and where it ends."""
    m = _LABELS_BACKWARDS.search(before[::-1])
    if m is None:
        return None
    return _KIND_OF[m.group()[::-1]], len(before) - m.start()


def _digit_count(value: str) -> int:
    return sum(c.isdigit() for c in value)


class BankAccountDetector:
    """Account numbers after an account label, card numbers (Luhn) after a card label,
    UK sort codes with their account, and ABA-valid US routing numbers after theirs."""

    entities = frozenset({Entity.BANK_ACCOUNT})
    numeric = True
    min_digits = 6  # an account; a sort code; a routing number has nine

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        return iter(self.find_windows(text, ((start, len(text) if end is None else end),)))

    def find_windows(self, text: str, windows: Windows) -> list[Finding]:
        found: list[Finding] = []
        for start, end in windows:
            near = text[max(0, start - 40) : end].lower()
            if _ANY_WORD.search(near) is not None:  # most windows: one search, no word's test
                self._find_in(text, start, end, near, found)
        return found

    def _find_in(self, text: str, start: int, end: int, near: str, found: list[Finding]) -> None:
        if "sort" in near or "s/c" in near:
            found.extend(self._sort_codes(text, start, end))
        if any(word in near for word in ("routing", "aba", "rtn", "transit")):
            found.extend(self._routing(text, start, end))
        if _LABELS_BACKWARDS.search(near[::-1]) is None:
            return  # no label word near: `_labelled` finds none in any number's 40 before
        for m in _ACCOUNT.finditer(text, start, end):
            if self._labelled(text, m):
                found.append(Finding(Entity.BANK_ACCOUNT, m.start(), m.end(), 0.9, False))

    @staticmethod
    def _labelled(text: str, m: re.Match[str]) -> bool:
        digits = m.group().replace(" ", "").replace("-", "")  # `_ACCOUNT` holds only these
        if not 6 <= len(digits) <= 25 or _AMOUNT_AFTER.match(text, m.end()):
            return False
        before = text[max(0, m.start() - 40) : m.start()]
        label = _label(before.lower())
        if label is None:
            return False
        kind, label_end = label
        if not _FILLER.fullmatch(before, label_end) or _REFERENCE.search(before, label_end):
            return False
        if kind == _CARD:  # a card label: a card number, Luhn-valid
            return 16 <= len(digits) <= 19 and luhn_valid(digits)
        if _NOT_BANK.search(before):  # "AWS account number 123456789012", "account ID …"
            return False
        if kind == _WEAK:  # a bare "account": only where a bank is spoken of
            around = text[max(0, m.start() - 120) : m.end() + 60]
            return _BANK_CONTEXT.search(around) is not None
        return True

    @staticmethod
    def _sort_codes(text: str, start: int, end: int) -> Iterator[Finding]:
        for m in _SORT_CODE.finditer(text, start, end):
            if _SORT_LABEL.search(text, max(0, m.start() - 40), m.start()):
                yield Finding(Entity.BANK_ACCOUNT, m.start(), m.end(), 0.9, False)

    @staticmethod
    def _routing(text: str, start: int, end: int) -> Iterator[Finding]:
        for m in _ROUTING.finditer(text, start, end):
            if aba_valid(m.group()) and _ROUTING_LABEL.search(
                text, max(0, m.start() - 32), m.start()
            ):
                yield Finding(Entity.BANK_ACCOUNT, m.start(), m.end(), 0.95, True)


_PASSPORT_WORD = re.compile(
    r"护照|護照|旅券|パスポート|(?i:passport|reisepass|passeport|pasaporte|passaporto|paspoort)"
)
# Every passport word holds one of these, as written in most texts (a substring test first).
PASSPORT_HINTS = ("护照", "護照", "旅券", "パスポート", "assport", "ASSPORT", "eisepass",
                   "asseport", "asaporte", "assaporto", "aspoort")  # fmt: skip
_PASSPORT = re.compile(r"(?<![0-9A-Za-z])[A-Z0-9]{7,10}(?![0-9A-Za-z])")
_PASSPORT_REACH = 48
_PASSPORT_FILLER = re.compile(r"[^0-9\n]{0,40}")
_PASSPORT_BEFORE = re.compile(
    r"(?<![0-9A-Za-z])([A-Z0-9]{7,10})[\s(,:\uff08\uff0c\uff1a]{0,3}(?:(?:is|was)\s+)?"
    r"(?:(?:my|the|his|her|their|your|our)\s+)?(?:[A-Z]{2,3}\s+|[A-Z][a-z]{2,10}\s+)?"
    r"(?:是|为)?(?:我的|他的|她的|的)?$"
)
# After one passport number, another only in a list ("G12345678 and E87654321").
_PASSPORT_NEXT = re.compile(r"[\s,/;、]{0,3}(?:and|or|和|或|及)?[\s,/;、]{0,3}")
_PASSPORT_NOT = re.compile(
    r"订单|单号|发票|编号|航班|商品|型号|(?i:order|invoice|tracking|ref|flight|train|ticket|photo"
    r"|fee|office|price|cost|code|sku|item|product|model|part|holder|cover|case|wallet)"
)


class PassportDetector:
    """Passport-shaped tokens (7-10 capitals and digits, five digits or more) after a passport
    word in English, Chinese, Japanese, German, French, Spanish, Italian or Dutch."""

    entities = frozenset({Entity.PASSPORT})
    numeric = False
    min_digits = 0

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        end = len(text) if end is None else end
        if text.isascii() and "pas" not in text.lower():
            return  # every Latin passport word holds it, in any case (one search, not eleven)
        if not any(word in text for word in PASSPORT_HINTS):
            return
        for word in _PASSPORT_WORD.finditer(text, max(0, start - _PASSPORT_REACH), end):
            at, found = word.end(), False
            for m in _PASSPORT.finditer(text, at, min(end, at + _PASSPORT_REACH)):
                if _digit_count(m.group()) < 5:
                    continue  # a word in capitals ("PASSPORT DETAILS:"), part of the filler
                filler = text[at : m.start()]
                allowed = _PASSPORT_NEXT if found else _PASSPORT_FILLER
                if not allowed.fullmatch(filler) or _PASSPORT_NOT.search(filler):
                    break
                if m.start() >= start:
                    yield Finding(Entity.PASSPORT, m.start(), m.end(), 0.9, False)
                at, found = m.end(), True
            if not found:
                yield from self._before(text, word.start(), start)

    @staticmethod
    def _before(text: str, word: int, start: int) -> Iterator[Finding]:
        """A number just before its word: "123456789 (US passport)", "E12345678是我的护照号"."""
        m = _PASSPORT_BEFORE.search(text, max(0, word - 32), word)
        if m is None or m.start() < start or _digit_count(m.group(1)) < 5:
            return
        around = text[max(0, m.start() - 16) : m.start()] + " " + text[word : word + 24]
        if not _PASSPORT_NOT.search(around):
            yield Finding(Entity.PASSPORT, m.start(1), m.end(1), 0.85, False)
