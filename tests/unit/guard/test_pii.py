# ruff: noqa: RUF001 - test texts are Chinese, with its full-width punctuation, on purpose.
"""Personal-data detectors: what they find, where, and what they must leave alone."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkhead.guard import Entity, EntityScanner
from bulkhead.guard._detector import numeric_windows
from bulkhead.guard._pii import card_prefix_plausible
from tests.unit.guard.reference import luhn_complete

SCANNER = EntityScanner()


def found(text: str) -> list[tuple[str, str]]:
    return [(f.entity.value, text[f.start : f.end]) for f in SCANNER.find(text)]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("我的身份证号是11010519491231002X谢谢", "prc_id", "11010519491231002X"),
        ("ID 11010519491231002x.", "prc_id", "11010519491231002x"),
        ("证件 110105 19491231 002X 已核验", "prc_id", "110105 19491231 002X"),
        ("card 4111 1111 1111 1111 ok", "card", "4111 1111 1111 1111"),
        ("卡号4111-1111-1111-1111谢谢", "card", "4111-1111-1111-1111"),
        ("银联卡6212345678901232请查收", "card", "6212345678901232"),
        ("Amex 3782 822463 10005 expires", "card", "3782 822463 10005"),
        ("numbers: 4111 1111 1111 1111 2024", "card", "4111 1111 1111 1111"),
        ("mail zhang.san@example.com.", "email", "zhang.san@example.com"),
        ("邮箱是li_na+work@mail.example.cn谢谢", "email", "li_na+work@mail.example.cn"),
        ("手机13800138000，谢谢", "phone", "13800138000"),
        ("call +86 138 0013 8000 now", "phone", "+86 138 0013 8000"),
        ("电话(+86)13800138000", "phone", "(+86)13800138000"),
        ("ring +44 20 7946 0958 today", "phone", "+44 20 7946 0958"),
        ("US office (415) 555-2671.", "phone", "(415) 555-2671"),
        ("座机010-65529988转分机", "phone", "010-65529988"),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "iban", "GB82 WEST 1234 5698 7654 32"),
        ("账户DE89370400440532013000。", "iban", "DE89370400440532013000"),
        ("from 203.0.113.7 at night", "ip_address", "203.0.113.7"),
        ("服务器192.168.1.10无法访问", "ip_address", "192.168.1.10"),
        ("v6 2001:db8::8a2e:370:7334 and more", "ip_address", "2001:db8::8a2e:370:7334"),
        ("zone fe80::1%eth0 link", "ip_address", "fe80::1%eth0"),
    ],
)
def test_finds_entity_with_exact_span(text: str, entity: str, value: str) -> None:
    assert (entity, value) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Order #4111111111111112 has shipped.",  # Luhn fails
        "订单号1234567890123456已发货",  # prefix 1 is no issuer
        "Logged at 20240131123045123 by the job",  # 2-series outside 2221-2720
        "The event timestamp is 1706688000000 ms.",
        "编号11010519491231002Y的档案",  # no such check char
        "编号110105194912310021的档案",  # wrong check digit, and no card either
        "会员号110105194902300015请保管",  # 30 February
        "Upgrade to version 1.2.3.4 before Monday",
        "Windows build 10.0.19041.1 is affected",
        "Bind to 127.0.0.1 and 0.0.0.0 and ::1 only",
        "The value 999.1.1.1 is not an address",
        "The meeting is at 12:30:45 sharp",
        "MAC 00:1A:2B:3C:4D:5E is allowed",
        "Run npm install react@18.2.0 first",
        "Invoice No. 415-555-2671 is overdue",
        "发票号码 13800138000 已作废",
        "订单号：18612345678，请核对",
        "ISBN 978-3-16-148410-0 is on the shelf",
        "Reference GB83WEST12345698765432 was rejected",
        "Serial 12345678901234567890123 is too long to be anything",
        "The total is 4,111,111,111,111,111 units",
        "温度 36.6, 37.2, 38.1, 36.9",
    ],
)
def test_hard_negatives_do_not_fire(text: str) -> None:
    assert found(text) == []


def test_card_prefixes() -> None:
    assert card_prefix_plausible("4111") and card_prefix_plausible("2221")
    assert card_prefix_plausible("6212") and card_prefix_plausible("3782")
    assert not card_prefix_plausible("2220") and not card_prefix_plausible("2721")
    assert not card_prefix_plausible("1706") and not card_prefix_plausible("9999")


def test_every_card_length_from_13_to_19_in_chinese_text() -> None:
    # Visa-prefixed numbers of each length, and a 62-prefixed 19-digit UnionPay.
    bodies = [("4" + "2718281828459045")[: n - 1] for n in range(13, 20)] + ["621234567890123456"]
    for body in bodies:
        number = luhn_complete(body)
        assert found(f"卡号是{number}谢谢") == [("card", number)], number
        broken = number[:-1] + str((int(number[-1]) + 1) % 10)
        assert found(f"卡号是{broken}谢谢") == [], broken


def test_only_enabled_entities_are_looked_for() -> None:
    scanner = EntityScanner({Entity.EMAIL})
    text = "a@example.com 4111 1111 1111 1111 13800138000"
    assert [f.entity for f in scanner.find(text)] == [Entity.EMAIL]


def test_id_birth_date_uses_the_injected_clock() -> None:
    from bulkhead.guard import prc_id_check_char

    first17 = "11010520300101001"
    number = first17 + prc_id_check_char(first17)
    past = EntityScanner({Entity.PRC_ID}, today=lambda: dt.date(2026, 1, 1))
    future = EntityScanner({Entity.PRC_ID}, today=lambda: dt.date(2031, 1, 1))
    assert past.find(f"ID {number}") == []
    assert len(future.find(f"ID {number}")) == 1


def test_phone_regions_are_configurable() -> None:
    text = "call (650) 253-0000"
    assert EntityScanner({Entity.PHONE}, phone_regions=("CN", "GB")).find(text) == []
    assert len(EntityScanner({Entity.PHONE}, phone_regions=("US",)).find(text)) == 1


def test_findings_are_validated_and_scored() -> None:
    (finding,) = SCANNER.find("card 4111111111111111")
    assert finding.validated and 0 < finding.score <= 1
    assert "4111" not in finding.summary() and "card@" in finding.summary()


@given(st.text(alphabet="0123456789 -+().abcX中", max_size=80))
def test_numeric_windows_cover_every_numeric_finding(text: str) -> None:
    windows = numeric_windows(text)
    numeric = {Entity.CARD, Entity.PRC_ID, Entity.PHONE}
    for f in SCANNER.find(text):
        if f.entity in numeric:
            assert any(lo <= f.start and f.end <= hi for lo, hi in windows)
