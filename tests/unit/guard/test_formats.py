"""Issue 19's formats, per kind, English and Chinese: each found whole, each look-alike left alone.

National phone numbers of the tenant's regions, cards in every grouping,
credentials by where they are written, cloud credentials, Chinese bank
accounts and passports.  The guard corpus (tests/vectors/guard) holds more.
"""

# ruff: noqa: RUF001 - Chinese text is written with its own punctuation.
from __future__ import annotations

import pytest

from bulkhead.guard import Action, Entity, EntityScanner, Guard, GuardConfig
from tests.unit.guard.reference import luhn_complete

SCANNER = EntityScanner(phone_regions=("CN", "US", "GB", "DE", "JP"))
UNIONPAY = luhn_complete("622588123456789012")  # 19 digits
U = UNIONPAY
PAT = "github_pat_11ABCDEFG0_abcdefghij0123456789"


def found(text: str, scanner: EntityScanner = SCANNER) -> list[tuple[str, str]]:
    return [(f.entity.value, text[f.start : f.end]) for f in scanner.find(text)]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("Ruf mich an: 030 12345678", "phone", "030 12345678"),
        ("Handy 0151 23456789 bitte", "phone", "0151 23456789"),
        ("tel 03-1234-5678 (Tokyo)", "phone", "03-1234-5678"),
        ("携帯090-1234-5678まで", "phone", "090-1234-5678"),
        ("UK mobile 07700 900123", "phone", "07700 900123"),
        ("英国号码07700900123谢谢", "phone", "07700900123"),
        (f"UnionPay {UNIONPAY[:6]} {UNIONPAY[6:]}", "card", f"{UNIONPAY[:6]} {UNIONPAY[6:]}"),
        (
            f"卡号{U[:4]} {U[4:8]} {U[8:12]} {U[12:16]} {U[16:]}",
            "card",
            f"{U[:4]} {U[4:8]} {U[8:12]} {U[12:16]} {U[16:]}",
        ),
        (f"银联卡{UNIONPAY}请核对", "card", UNIONPAY),
        ("amex 3782 822463 10005", "card", "3782 822463 10005"),
        ("amex 3782-822463-10005", "card", "3782-822463-10005"),
        ("收款账号：1202 0212 0900 1234 567", "bank_account", "1202 0212 0900 1234 567"),
        ("Bank account number: 6013820001234567", "bank_account", "6013820001234567"),
        ("护照号码：E12345678", "passport", "E12345678"),
        ("passport no. G12345678", "passport", "G12345678"),
        ("我的护照号是EA1234567", "passport", "EA1234567"),
        ("postgres://app:S3cr3t!pw@db.internal/app", "credential", "S3cr3t!pw"),
        ("https://bob:hunter2@example.com/x", "credential", "hunter2"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "credential", "dXNlcjpwYXNzd29yZA=="),
        ('password = "s3cr3tP@ss"', "credential", "s3cr3tP@ss"),
        ("DB_PASSWORD=abc123xyz", "credential", "abc123xyz"),
        ('{"client_secret": "AbC123xyz789"}', "credential", "AbC123xyz789"),
        ("db:\n  password: r3d1s-Pa55\n", "credential", "r3d1s-Pa55"),
        ("数据库密码：Abc12345", "credential", "Abc12345"),
        ("AccountKey=" + "Ab1+" * 21 + "AB==;x", "cloud_secret", "Ab1+" * 21 + "AB=="),
        ('"private_key_id": "' + "0a" * 20 + '"', "cloud_secret", "0a" * 20),
        (
            "hook https://hooks.slack.com/services/T024BE7LD/B01ABCDEF12/a1B2c3D4e5F6g7H8i9J0k1L2",
            "api_key",
            "https://hooks.slack.com/services/T024BE7LD/B01ABCDEF12/a1B2c3D4e5F6g7H8i9J0k1L2",
        ),
        ("xoxb-2024-5678-a1b2c3d4e5f6", "api_key", "xoxb-2024-5678-a1b2c3d4e5f6"),
        ("sk_live_51Hx9aB2cD3eF4gH5iJ6kL7", "api_key", "sk_live_51Hx9aB2cD3eF4gH5iJ6kL7"),
        ("rk_live_51Hx9aB2cD3eF4gH5iJ6kL7", "api_key", "rk_live_51Hx9aB2cD3eF4gH5iJ6kL7"),
        (f"token {PAT}", "api_key", PAT),
        ("ghs_" + "Ab1" * 12, "api_key", "ghs_" + "Ab1" * 12),
    ],
)  # fmt: skip
def test_each_format_is_found_whole(text: str, entity: str, value: str) -> None:
    assert found(text) == [(entity, value)]


@pytest.mark.parametrize(
    "text",
    [
        "ISBN 0-306-40615-2",
        "ISBN 0306406152 second edition",
        "Release build 0123456789 passed",
        "订单号 01012345678 已发货",
        "max_tokens: 1000, token_count = 5",
        "password: required",
        "password = get_password()",
        'password = "<your password>"',
        "password=${PASSWORD}",
        "api_key = os.environ['API_KEY']",
        "https://user:${DB_PASS}@db/app",
        "Basic arithmetic first.",
        "Part number E12345678 is back in stock.",
        "订单号 E12345678 已发货",
        "账号已冻结，订单号 1234567890123456 请核对",
        "时间戳 1701388800123456",
        "sha1 3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c",
        "version 2024.01.15.0012345",
        "on 01.02.2024 12:30 we met",
        "02.03.2021 13.45",
        "timestamp 01-02-2024 11:22:33",
        "PWD=/home/user/project",
    ],
)
def test_look_alikes_stay_intact(text: str) -> None:
    assert found(text) == []


def test_a_region_not_listed_is_not_read_as_national() -> None:
    """Germany's 030 number is a phone only for a tenant that lists DE."""
    assert found("Ruf mich an: 030 12345678", EntityScanner(phone_regions=("US",))) == []


def test_a_password_is_never_partly_kept_by_mask() -> None:
    guard = Guard(GuardConfig(entities={Entity.CREDENTIAL: Action.MASK}))
    body = {"messages": [{"role": "user", "content": "DB_PASSWORD=abc123xyz"}]}
    assert guard.scan_request(body).body["messages"][0]["content"] == (
        "DB_PASSWORD=[REDACTED:CREDENTIAL]"
    )


def test_credentials_are_redacted_by_default() -> None:
    body = {"messages": [{"role": "user", "content": "psql postgres://app:S3cr3t!pw@db/app"}]}
    sent = Guard(GuardConfig()).scan_request(body).body
    assert sent["messages"][0]["content"] == "psql postgres://app:[REDACTED:CREDENTIAL]@db/app"
