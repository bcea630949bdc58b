# ruff: noqa: RUF001 - generated texts hold full-width characters on purpose.
"""The shortcuts of a scan (issue 19) change nothing it finds.

`EntityScanner` runs the numeric detectors only on the windows around digit
runs, skips a detector on a window with too few digits for it, and matches
the labels before a number reversed.  Each test here compares it with the
plain way: every detector over the whole text, and each label as the
forward regex it was written as.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.guard import Entity, EntityScanner, _accounts, _pii, _secrets
from bulkhead.guard._checksums import luhn_valid, prc_id_check_char, prc_id_valid
from bulkhead.guard._entities import Finding, resolve_overlaps
from bulkhead.guard._pii import CardDetector, card_prefix_plausible, pii_detectors
from bulkhead.guard._scan import _NARROW
from bulkhead.guard._secrets import secret_detectors
from tests.unit.guard.reference import luhn_complete

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
    "order",
    "Invoice",
    "TRACKING",
    "reference",
    "ref",
    "serial",
    "sku",
    "ticket",
    "txn",
    "receipt",
    "parcel",
    "shipment",
    "batch",
    "po",
    "isbn",
    "issn",
    "meeting",
    "conference id",
    "webinar\tID",
    "订单",
    "单号",
    "发票",
    "编号",
    "流水",
    "快递",
    "运单",
    "批次",
    "序列号",
    "交易",
    "工单",
    "会议号",
    "会议id",
    "phone",
    "Tel",
    "call",
    "mobile",
    "cell",
    "FAX",
    "whatsapp",
    "contact",
    "sms",
    "电话",
    "手机",
    "號碼",
    "电话号码",
    "手机号",
    "电話",
    "携帯",
    "联系",
    "v",
    "ver",
    "ver.",
    "Version",
    "release",
    "build",
    "版本",
    "版本号",
    "no",
    "No.",
    "#",
    "is",
]
FILLER = st.sampled_from(
    [
        " ",
        "  ",
        ".",
        ":",
        "：",
        "#",
        "号",
        "码",
        "no",
        "NO",
        "\n",
        ",",
        "(",
        ")",
        "是",
        "为",
        "\t",
        "x",
        "1",
        "é",
        "\u212a",
        "ſ",
    ]
)
LABEL_TEXT = st.lists(st.one_of(st.sampled_from(LABEL_WORDS), FILLER), max_size=8).map("".join)


@given(LABEL_TEXT, st.sampled_from(sorted(FORWARD_LABELS)))
@settings(max_examples=3000)
def test_reversed_labels_match_where_the_forward_ones_do(before: str, which: str) -> None:
    text = before + "13800138000"
    start = len(before)
    forward = FORWARD_LABELS[which].search(text, max(0, start - 16), start) is not None
    assert _pii._labelled(text, start, REVERSED_LABELS[which]) == forward


DIGITS = st.sampled_from(
    [
        "4111 1111 1111 1111",
        "4111111111111111",
        "378282246310005",
        "6222 0212 3456 7890 128",
        "11010519491231002X",
        "110105 19491231 002x",
        "13800138000",
        "+86 138 0013 8000",
        "(650) 253-0000",
        "020 7946 0018",
        "+44 20 7946 0018",
        "0044 20 7946 0018",
        "4155552671",
        "192.168.1.20",
        "10.0.0.1",
        "1.2.3.4",
        "12-34-56",
        "12345678",
        "021000021",
        "2024",
        "06.12.34.56.78",
        "01.02.2024",
        "0301234567",
        "E12345678",
        "DE89 3704 0044 0532 0130 00",
        "4111 1111 1111 1112",
        "１３８００１３８０００",
        "４１１１１１１１１１１１１１１１",
        "2001:db8::1",
    ]
)
WORDS = st.sampled_from(
    [
        "my phone is ",
        "call ",
        "order no. ",
        "订单号",
        "手机",
        "身份证",
        "card ",
        "卡号",
        "账号 ",
        "bank account ",
        "account number ",
        "sort code ",
        "routing number ",
        "passport ",
        "护照号码",
        "version ",
        "li.na@example.com",
        "user:pw@host.example",
        "a@b",
        " and ",
        ", ",
        "-",
        ".",
        " ",
        "\n",
        "x",
        "中文",
        "谢谢",
        "ref ",
        "tel:",
        "v",
    ]
)
MIXED = st.lists(
    st.one_of(DIGITS, WORDS, st.text("0123456789 -+().x@X中", max_size=12)), max_size=12
).map("".join)
DETECTORS = (*secret_detectors(), *pii_detectors())
SCANNER = EntityScanner()


def plain_find(text: str, entities: frozenset[Entity] = frozenset(Entity)) -> list[Finding]:
    """Every detector of `entities` over the whole text, no windows, no digit counts."""
    if not text:
        return []
    text = text.translate(_NARROW)
    # Where two tie, the scanner keeps the one found first: the detectors of whole texts
    # come before the numeric ones.
    chosen = [d for d in DETECTORS if d.entities & entities and not d.numeric]
    chosen += [d for d in DETECTORS if d.entities & entities and d.numeric]
    found = [f for d in chosen for f in d.find(text) if f.entity in entities]
    return resolve_overlaps(found) if len(found) > 1 else found


@given(MIXED)
@settings(max_examples=1500)
def test_the_scanner_finds_what_every_detector_over_the_whole_text_finds(text: str) -> None:
    assert SCANNER.find(text) == plain_find(text)


@pytest.mark.parametrize("entity", sorted(Entity))
@given(MIXED)
@settings(max_examples=100)
def test_a_scanner_for_one_entity_finds_what_its_detectors_find(entity: Entity, text: str) -> None:
    assert EntityScanner({entity}).find(text) == plain_find(text, frozenset({entity}))


ADVERSARIAL = [
    "1" * 102_400,
    "1 " * 51_200,
    "1-" * 51_200,
    "+86 " * 25_600,
    "13800138000" * 9_300,
    "4111 1111 1111 1111 " * 5_120,
    "11010519491231002X" * 5_700,
    "0" * 102_400,
    "1." * 51_200,
    "a@" * 51_200,
    "a" * 64 + "@" + "b." * 51_000,
    "订单号" * 34_000,
    "账号 1 " * 20_480,
    "passport " * 11_400,
    "(0" * 51_200,
    "１" * 102_400,
]


@pytest.mark.serial
@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_a_hundred_kib_of_adversarial_input_scans_in_linear_time(text: str) -> None:
    """100 KiB of repeated near-entities: well under a second of CPU (a quadratic
    re-scan of the windows would take minutes)."""
    SCANNER.find(text[:1000])
    start = time.process_time()
    SCANNER.find(text)
    assert time.process_time() - start < 2.0


def _digits_reference(candidate: str) -> str:
    return "".join(c for c in candidate if "0" <= c <= "9" or c in "Xx")


@given(st.text("0123456789 -.()+/Xx١a中\uff11", max_size=40))
def test_digits_keeps_the_ascii_digits_and_x_in_order(candidate: str) -> None:
    assert _pii._digits(candidate) == _digits_reference(candidate)


@given(st.text("0123456789", min_size=1, max_size=30))
def test_luhn_and_the_id_check_agree_with_their_plain_forms(digits: str) -> None:
    assert luhn_valid(digits) == (luhn_complete(digits[:-1]) == digits)
    if len(digits) >= 17:
        first17 = digits[:17]
        number = first17 + prc_id_check_char(first17)
        today = dt.date(2100, 1, 1)
        assert prc_id_valid(number, today=today) == prc_id_valid(number.lower(), today=today)
        assert not prc_id_valid(first17 + ("0" if number[17] != "0" else "1"), today=today)


def _best_span_reference(candidate: str) -> tuple[int, int] | None:
    """The card span search as first written: the longest run of groups first."""
    groups = [m.span() for m in re.finditer(r"[0-9]+", candidate)]
    for size in range(len(groups), 0, -1):
        for first in range(len(groups) - size + 1):
            start, end = groups[first][0], groups[first + size - 1][1]
            digits = _digits_reference(candidate[start:end])
            if 13 <= len(digits) <= 19 and card_prefix_plausible(digits) and luhn_valid(digits):
                return start, end
    return None


CARD_GROUPS = st.lists(
    st.sampled_from(
        ["4111", "1111", "2024", "378282", "246310005", "62", "4111111111111111", "12", "0000"]
    ),
    min_size=1,
    max_size=7,
)


@given(CARD_GROUPS, st.sampled_from([" ", "-"]))
def test_the_card_span_is_the_one_the_plain_search_finds(groups: list[str], sep: str) -> None:
    candidate = sep.join(groups)
    assert CardDetector()._best_span(candidate) == _best_span_reference(candidate)


def _label_reference(before: str) -> tuple[str, int] | None:
    """The account label as first found: a backwards find of each word, the last-ending kept."""
    best: tuple[int, int, str] | None = None
    for word, kind in _accounts._LABEL_WORDS:
        at = before.rfind(word)
        if at >= 0 and (best is None or (at + len(word), len(word)) > best[:2]):
            best = (at + len(word), len(word), kind)
    return None if best is None else (best[2], best[0])


ACCOUNT_WORDS = st.sampled_from([w for w, _ in _accounts._LABEL_WORDS] + ["acc", "ount", " ", "1"])


@given(st.lists(ACCOUNT_WORDS, max_size=6).map("".join))
def test_the_account_label_is_the_one_the_plain_search_finds(before: str) -> None:
    assert _accounts._label(before) == _label_reference(before)


@given(MIXED)
def test_a_window_the_gates_pass_over_holds_nothing_for_the_skipped_searches(text: str) -> None:
    phone = _pii.PhoneDetector
    four = (phone._international, phone._national, phone._trunk, phone._compact)
    assert (phone._others.search(text) is None) == all(p.search(text) is None for p in four)
    near = text.lower()
    words = ("sort", "s/c", "routing", "aba", "rtn", "transit", *_accounts._HINTS)
    assert (_accounts._ANY_WORD.search(near) is None) == all(w not in near for w in words)


EMAIL_PARTS = st.sampled_from(["a", "li.na", "x" * 60, "y" * 70, "@", "@@", ".", "..", "-", "_",
                               "%", "+", "example.com", "b.c", "co", "com.", " ", "中", ":",
                               "://u:", "1", ".org", "-x.io", "a@b.cd@e.fg", "é"])  # fmt: skip


@given(st.lists(EMAIL_PARTS, max_size=12).map("".join), st.integers(0, 20), st.integers(0, 40))
@settings(max_examples=1000)
def test_emails_are_found_where_a_search_of_the_whole_text_finds_them(
    text: str, start: int, cut: int
) -> None:
    email = _pii.EmailDetector()
    end = max(start, len(text) - cut)
    expected = [m.span() for m in email._pattern.finditer(text, start, end)]
    assert [m.span() for m in email._matches(text, start, end)] == expected


# Texts with every whole-text detector's formats (session 12): keys, tokens, JWTs, PEM
# blocks, URLs with credentials, IBANs, passports after their words, e-mail addresses,
# and the look-alikes that share their prefixes, in English and Chinese.
SECRET_WORDS = st.sampled_from(
    [
        "sk-proj-" + "Ab1" * 8,
        "sk-" + "a1" * 12,
        "sk_live_" + "Zx9" * 6,
        "rk_test_" + "q" * 16,
        "_live_" + "a1" * 8,
        "ghp_" + "A1b" * 12,
        "github_pat_" + "x1_" * 8,
        "xoxb-" + "12ab-" * 3,
        "xapp-1-" + "AB12" * 3,
        "AIza" + "Sy1_" * 9,
        "AKIA" + "ABCDEFGH12345678",
        "GOCSPX-" + "a1" * 10,
        "hf_" + "aB" * 15,
        "glpat-" + "x1" * 10,
        "npm_" + "a1" * 18,
        "SG." + "a1" * 8 + "." + "b2" * 8,
        "whsec_" + "a1+/" * 6,
        "SK" + "0a" * 16,
        "abcQ~" + "x1" * 15 + "z",
        "Q~",
        "bks_abcdefghijkl_" + "a1" * 21 + "b",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_abc",
        "eyJ",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEvQIBADANBgkq",
        "postgres://admin:S3cr3tPass@db.example.com",
        "https://user:pw@host",
        "://",
        "Basic dXNlcjpwYXNzd29yZA==",
        "Bearer abcdefABCDEF123456",
        "AUTHORIZATION: BEARER abcdefABCDEF123456",
        "BASIC dXNlcjpwYXNzd29yZA==",
        "AWS_SECRET_ACCESS_KEY=" + "aB1/" * 10,
        "AccountKey=" + "Ab1+" * 6 + ";",
        "sig=" + "a1%2B" * 5,
        '"private_key_id": "' + "0a" * 20 + '"',
        "AC" + "0a" * 16 + " twilio",
        "aws_secret_access_key = " + "aB1/" * 10,
        "password is Hunter22x",
        "<password>Abc123xyz</password>",
        'key="DbPassword" value="Abc123xyz"',
        "GB82 WEST 1234 5698 7654 32",
        "DE89370400440532013000",
        "passport number E12345678",
        "G12345678 passport",
        "Passport: ",
        "PASSPORT",
        "护照号码E12345678",
        "パスポート",
        "pas",
        "li.na@example.com",
        "a.b@c.d",
        "中文",
        "谢谢",
        " ",
        "\n",
        "=",
        "_",
        "-",
        ".",
        "~",
        "A",
        "x",
    ]
)
SECRET_TEXT = st.lists(
    st.one_of(SECRET_WORDS, st.text("aA1_-.~=:@Q中", max_size=6)), max_size=10
).map("".join)


def _api_keys_reference(text: str) -> list[Finding]:
    """The key detector as it was: one alternation of every prefix, then every pattern."""
    if _secrets.ANY_KEY_START.search(text) is None:
        return []
    found = []
    for _, pattern in _secrets._API_KEYS:
        for m in pattern.finditer(text):
            span = _secrets.ApiKeyDetector._span(text, m)
            if span is not None and _secrets._key_like(text[span[0] + 4 : span[1]]):
                found.append(Finding(Entity.API_KEY, span[0], span[1], 0.95, False))
    return found


@given(SECRET_TEXT)
@settings(max_examples=2000)
def test_the_scanner_finds_every_whole_text_format_as_every_detector_does(text: str) -> None:
    assert SCANNER.find(text) == plain_find(text)
    assert list(_secrets.ApiKeyDetector().find(text)) == _api_keys_reference(text)
    if text.isascii() and "pas" not in text.lower():
        assert _accounts._PASSPORT_WORD.search(text) is None


@given(SECRET_TEXT)
@settings(max_examples=1000)
def test_each_key_pattern_holds_the_characters_it_is_gated_on(text: str) -> None:
    for needs, pattern in _secrets._API_KEYS:
        for m in pattern.finditer(text):
            assert all(c in m.group() for c in needs), (needs, m.group())
