"""Detectors of identifiers that only their label tells apart: bank accounts and passports.

Sixteen to nineteen digits are an order number as often as an account, and
"E12345678" is a part number as often as a passport: these count only after
a word that names them ("银行卡号", "账号", "account number", "护照号码",
"passport no.") a few characters before.  A number labelled as a card
(银行卡, 卡号, 借记卡, 信用卡) must also pass the Luhn check, as every card
issued in China (UnionPay, ISO/IEC 7812) does; an account number
(账号, 账户, "account") carries no check digit a detector could test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bulkhead.guard._checksums import luhn_valid
from bulkhead.guard._entities import Entity, Finding

_CARD_WORDS = r"银行卡|卡号|借记卡|储蓄卡|信用卡|bank\s?card"
_ACCOUNT_WORDS = "|".join(
    (
        r"账号|帐号|账户|帐户|户号|收款账号|银行账号|对公账户",
        r"(?i:bank\s+account|account\s+(?:number|no\.?)|acct\.?)",
    )
)
# Every label holds one of these (a substring test, before any regex runs).
_LABEL_HINTS = ("卡", "账", "帐", "户", "card", "account", "acct")
_LABEL = re.compile(rf"(?:({_CARD_WORDS})|({_ACCOUNT_WORDS}))[^0-9\n]{{0,8}}$")
# A reference label between the account word and the number ("账号已冻结, 订单号 …") wins.
_REFERENCE = re.compile(r"订单|单号|发票|编号|流水|快递|运单|(?i:order|invoice|tracking|ref)")
_ACCOUNT = re.compile(
    r"(?<![0-9A-Za-z.\-])[0-9]{4,19}(?:[ \-][0-9]{1,15}){0,4}(?![0-9A-Za-z]|[.\-][0-9])"
)
_PASSPORT_LABEL = re.compile(
    r"(?:护照|(?i:passport))[^0-9A-Za-z\n]{0,12}(?:(?i:no\.?|number|号码?|#)[^0-9A-Za-z\n]{0,4})?$"
)
_PASSPORT = re.compile(r"(?<![0-9A-Za-z])(?:[EG][0-9]{8}|E[A-HJ-NP-Z][0-9]{7})(?![0-9A-Za-z])")


def _hinted(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _LABEL_HINTS)


class BankAccountDetector:
    """Bank card and account numbers (16-19 digits) after a label; card labels need Luhn."""

    entities = frozenset({Entity.BANK_ACCOUNT})
    numeric = True

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        end = len(text) if end is None else end
        # Sixteen digits and a label before them, or nothing to look at in this window.
        if end - start < 16 or not _hinted(text[max(0, start - 24) : end]):
            return
        for m in _ACCOUNT.finditer(text, start, end):
            digits = "".join(c for c in m.group() if c.isdigit())
            if not 16 <= len(digits) <= 19:
                continue
            before = text[max(0, m.start() - 24) : m.start()]
            if not _hinted(before):
                continue
            label = _LABEL.search(before)
            if label is None or _REFERENCE.search(before, label.end(label.lastindex or 0)):
                continue
            if label.group(1) is None or luhn_valid(digits):
                yield Finding(
                    Entity.BANK_ACCOUNT, m.start(), m.end(), 0.9, label.group(1) is not None
                )


class PassportDetector:
    """PRC passport numbers (E or G and eight digits, or E, a letter and seven) after a label."""

    entities = frozenset({Entity.PASSPORT})
    numeric = False

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        end = len(text) if end is None else end
        if "护照" not in text and "assport" not in text and "ASSPORT" not in text:
            return
        for m in _PASSPORT.finditer(text, start, end):
            if _PASSPORT_LABEL.search(text, max(0, m.start() - 32), m.start()):
                yield Finding(Entity.PASSPORT, m.start(), m.end(), 0.9, False)
