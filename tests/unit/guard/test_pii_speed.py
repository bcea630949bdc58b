# ruff: noqa: RUF001 - generated texts hold full-width characters on purpose.
"""The shortcuts of a scan (issue 19) change nothing it finds.

`EntityScanner` runs the numeric detectors only on the windows around digit
runs, skips a detector on a window with too few digits for it, and matches
the labels before a number reversed.  Each test here compares it with the
plain way: every detector over the whole text, and each label as the
forward regex it was written as.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.guard import Entity, EntityScanner
from bulkhead.guard import _pii
from bulkhead.guard._entities import Finding, resolve_overlaps
from bulkhead.guard._pii import pii_detectors
from bulkhead.guard._secrets import secret_detectors

# The labels as first written (session 11): searched, forwards, for a match ending at the number.
FORWARD_LABELS = {
    "reference": re.compile(
        r"(?i)(?:order|invoice|tracking|reference|ref|serial|sku|ticket|transaction|txn|receipt|"
        r"parcel|shipment|batch|po|isbn|issn|(?:meeting|conference|webinar)(?:\s+id)?|"
        r"订单|单号|发票|编号|流水|快递|运单|批次|序列号|交易|工单|会议号|会议ID)"
        r"[\s.:\uff1a#号码no]{0,8}$"
    ),
    "phone": re.compile(
        r"(?i:phone|tel|call|mobile|cell|fax|whatsapp|contact|sms)[\s.:\uff1a#,()no]{0,8}$"
        r"|(?:电话|手机|號碼|电话号码|手机号|电話|携帯|联系)[\s:\uff1a号码是为]{0,4}$"
    ),
    "version": re.compile(r"(?i:v|ver\.?|version|release|build|版本|版本号)[\s:\uff1a]{0,3}$"),
}
REVERSED_LABELS = {
    "reference": _pii._REFERENCE_LABEL,
    "phone": _pii._PHONE_LABEL,
    "version": _pii._VERSION_LABEL,
}

LABEL_WORDS = [
    "order", "Invoice", "TRACKING", "reference", "ref", "serial", "sku", "ticket", "txn",
    "receipt", "parcel", "shipment", "batch", "po", "isbn", "issn", "meeting", "conference id",
    "webinar\tID", "订单", "单号", "发票", "编号", "流水", "快递", "运单", "批次", "序列号", "交易",
    "工单", "会议号", "会议id", "phone", "Tel", "call", "mobile", "cell", "FAX", "whatsapp",
    "contact", "sms", "电话", "手机", "號碼", "电话号码", "手机号", "电話", "携帯", "联系", "v", "ver",
    "ver.", "Version", "release", "build", "版本", "版本号", "no", "No.", "#", "is",
]  # fmt: skip
FILLER = st.sampled_from([" ", "  ", ".", ":", "：", "#", "号", "码", "no", "NO", "\n", ",", "(", ")",
                          "是", "为", "\t", "x", "1", "é", "\u212a", "ſ"])  # fmt: skip
LABEL_TEXT = st.lists(st.one_of(st.sampled_from(LABEL_WORDS), FILLER), max_size=8).map("".join)


@given(LABEL_TEXT, st.sampled_from(sorted(FORWARD_LABELS)))
@settings(max_examples=3000)
def test_reversed_labels_match_where_the_forward_ones_do(before: str, which: str) -> None:
    text = before + "13800138000"
    start = len(before)
    forward = FORWARD_LABELS[which].search(text, max(0, start - 16), start) is not None
    assert _pii._labelled(text, start, REVERSED_LABELS[which]) == forward


DIGITS = st.sampled_from(["4111 1111 1111 1111", "4111111111111111", "378282246310005",
                          "6222 0212 3456 7890 128", "11010519491231002X", "110105 19491231 002x",
                          "13800138000", "+86 138 0013 8000", "(650) 253-0000", "020 7946 0018",
                          "+44 20 7946 0018", "0044 20 7946 0018", "4155552671", "192.168.1.20",
                          "10.0.0.1", "1.2.3.4", "12-34-56", "12345678", "021000021", "2024",
                          "06.12.34.56.78", "01.02.2024", "0301234567", "E12345678", "DE89 3704 "
                          "0044 0532 0130 00", "4111 1111 1111 1112", "１３８００１３８０００",
                          "４１１１１１１１１１１１１１１１", "2001:db8::1"])  # fmt: skip
WORDS = st.sampled_from(["my phone is ", "call ", "order no. ", "订单号", "手机", "身份证",
                         "card ", "卡号", "账号 ", "bank account ", "account number ",
                         "sort code ", "routing number ", "passport ", "护照号码", "version ",
                         "li.na@example.com", "user:pw@host.example", "a@b", " and ", ", ",
                         "-", ".", " ", "\n", "x", "中文", "谢谢", "ref ", "tel:", "v"])  # fmt: skip
MIXED = st.lists(st.one_of(DIGITS, WORDS, st.text("0123456789 -+().x@X中", max_size=12)),
                 max_size=12).map("".join)  # fmt: skip
DETECTORS = (*secret_detectors(), *pii_detectors())
SCANNER = EntityScanner()


def plain_find(text: str) -> list[Finding]:
    """Every detector over the whole text, no windows, no digit counts: the reference."""
    if not text:
        return []
    found = [f for d in DETECTORS for f in d.find(text)]
    return resolve_overlaps(found) if len(found) > 1 else found


@given(MIXED)
@settings(max_examples=1500)
def test_the_scanner_finds_what_every_detector_over_the_whole_text_finds(text: str) -> None:
    narrow = text.translate(_pii_narrow())
    assert SCANNER.find(text) == plain_find(narrow)


def _pii_narrow() -> dict[int, int]:
    from bulkhead.guard._scan import _NARROW

    return _NARROW


@pytest.mark.parametrize("entity", sorted(Entity))
def test_a_scanner_for_one_entity_finds_the_same_as_the_reference(entity: Entity) -> None:
    text = "卡号 4111 1111 1111 1111，手机 13800138000，ID 11010519491231002X, 10.0.0.7 " * 3
    wanted = [f for f in plain_find(text) if f.entity is entity]
    assert EntityScanner({entity}).find(text) == resolve_overlaps(wanted) or entity in {
        Entity.BANK_ACCOUNT
    }
