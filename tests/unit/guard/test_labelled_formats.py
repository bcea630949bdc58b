# ruff: noqa: RUF001 - Chinese and Japanese test texts keep their full-width punctuation.
"""Issue 19 item 2: formats found by their label or prefix, each found whole, each look-alike
left alone, and no pattern slow on adversarial input.

Passports of several countries after a passport word; bank accounts after their labels
(UK sort code, ABA-checked US routing numbers, Japanese and Chinese accounts); provider keys
and secrets written in config, XML and prose; full-width and grouped PRC IDs; national phone
numbers of the tenant's regions.
"""

from __future__ import annotations

import time

import pytest

from bulkhead.guard import Action, EntityScanner, Guard, GuardConfig
from bulkhead.guard._checksums import aba_valid

SCANNER = EntityScanner(phone_regions=("CN", "US", "GB", "DE", "JP", "FR"))
GCP_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"
SENDGRID = "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"
WIDE_ID = "".join(chr(ord(c) + 0xFEE0) for c in "11010519491231002X")  # full-width forms
SAS_SIG = "AbCdEf%2BgH1jK2lMn3oPq4RsT5uVw6XyZ7aBcDeFgHi8%3D"


def found(text: str) -> list[tuple[str, str]]:
    return [(f.entity.value, text[f.start : f.end]) for f in SCANNER.find(text)]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("My passport number is 123456789 and it expires in 2030.", "passport", "123456789"),
        ("UK passport no. 987654321, issued London", "passport", "987654321"),
        ("Reisepass / passport: C01X00T47", "passport", "C01X00T47"),
        ("French passport 12AB34567 valid until 2031", "passport", "12AB34567"),
        ("Japanese passport number TR1234567.", "passport", "TR1234567"),
        ("Her passport (no. 512345678) was stolen.", "passport", "512345678"),
        ("他的护照号码是E12345678。", "passport", "E12345678"),
        ("護照号码: 123456789", "passport", "123456789"),
        ("护照 C01X00T47 已过期", "passport", "C01X00T47"),
        ("123456789 (US passport)", "passport", "123456789"),
        ("E12345678是我的护照号码", "passport", "E12345678"),
        ("environment:\n  POSTGRES_PASSWORD: example\n", "credential", "example"),
        ("Sort code 12-34-56, account number 12345678.", "bank_account", "12-34-56"),
        ("sort code: 20-00-00 73849201", "bank_account", "20-00-00 73849201"),
        ("Routing number 021000021, account 1234567890", "bank_account", "021000021"),
        ("三菱UFJ銀行 渋谷支店 普通 1234567", "bank_account", "1234567"),
        ("口座番号: 7654321", "bank_account", "7654321"),
        ("开户行：招商银行上海分行 账号：121909876510301", "bank_account", "121909876510301"),
        ("对公账户：1100 1234 5678 9012 345", "bank_account", "1100 1234 5678 9012 345"),
        ("AIza key AIzaSyD-1234567890abcdefghijklmnopqrstu", "api_key",
         "AIzaSyD-1234567890abcdefghijklmnopqrstu"),
        ("secret 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", "api_key",
         "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"),
        ("use hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh to pull", "api_key",
         "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"),
        ("glpat-AbCdEfGhIj1234567890", "api_key", "glpat-AbCdEfGhIj1234567890"),
        ("npm npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "api_key",
         "npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
        (f"key {SENDGRID}", "api_key", SENDGRID),
        ("whsec_1234567890abcdefghijklmnopqrstuv", "api_key",
         "whsec_1234567890abcdefghijklmnopqrstuv"),
        ("TWILIO SK0123456789abcdef0123456789abcdef", "api_key",
         "SK0123456789abcdef0123456789abcdef"),
        ("Azure app secret Xy8Q~aBcD1eFgHiJkLmNoPqRsTuVwXyZ0123456.", "api_key",
         "Xy8Q~aBcD1eFgHiJkLmNoPqRsTuVwXyZ0123456"),
        (f"https://a.blob.core.windows.net/c?sv=2022-11-02&sp=r&sig={SAS_SIG}", "cloud_secret",
         SAS_SIG),
        ("auth token 0123456789abcdef0123456789abcdef", "credential",
         "0123456789abcdef0123456789abcdef"),
        ("The client secret is Zk3Pq9Lm2Xv8Rt5Wn7.", "credential", "Zk3Pq9Lm2Xv8Rt5Wn7"),
        ("密码是Abc12345，别告诉别人", "credential", "Abc12345"),
        ("DB_PASS = 'N0tS0Secret!'", "credential", "N0tS0Secret!"),
        ('<add key="DbPassword" value="Xml$ecret1" />', "credential", "Xml$ecret1"),
        ('<property name="password" value="Xml$ecret2"/>', "credential", "Xml$ecret2"),
        ("<password>Xml$ecret3</password>", "credential", "Xml$ecret3"),
        ("redis://:S3cret99@redis:6379/0", "credential", "S3cret99"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyzABCDEF", "bearer_token",
         "abcdefghijklmnopqrstuvwxyzABCDEF"),
        ('{"private_key": "-----BEGIN PRIVATE KEY-----\\n' + GCP_BODY + '\\n', "private_key",
         "-----BEGIN PRIVATE KEY-----\\n" + GCP_BODY),
        ("身份证 1101 0519 4912 3100 2X", "prc_id", "1101 0519 4912 3100 2X"),
        ("身份证号：" + WIDE_ID, "prc_id", WIDE_ID),
        ("Tel. 089/12345678", "phone", "089/12345678"),
        ("phone 4155552671", "phone", "4155552671"),
        ("tél 06.12.34.56.78", "phone", "06.12.34.56.78"),
    ],
)  # fmt: skip
def test_each_format_is_found_whole(text: str, entity: str, value: str) -> None:
    assert (entity, value) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Order number 123456789 ships tomorrow.",
        "Order 123456789 passport photos",
        "SKU 1234567 Passport Holder, leather",
        "password = new_password",
        "SECRET_KEY: Optional[str]",
        "export API_TOKEN=required",
        "The passport office opens at 9.",
        "Passport photos cost $15; order 123456789.",
        "passport 2030-01-01 expiry",
        "Error code E12345678 in the passport service logs",
        "routing number 123456789 is invalid",
        "account 12345678 of 2024",
        "AWS account 123456789012",
        "AWS account number 123456789012",
        "Account ID: 123456789012",
        "arn:aws:iam::123456789012:role/Admin",
        "账户余额 12345678元",
        "Order 12-34-56 shipped",
        "Meeting ID: 891 2345 6789 Passcode: 123456",
        "统一社会信用代码 91350100M000100Y43",
        "股票代码 600519",
        "timestamp 1706688000",
        "call 555-0100 for a demo",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "the password is incorrect, try again",
        "token count is 4096",
        "max tokens 4096",
        "The secret is out",
        "sig=<signature>",
        "Use the placeholder sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "GOCSPX-XXXXXXXXXXXXXXXXXXXXXXXX",
        "Bearer xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "api key: sk-...xxxx",
        "card ****1234",
        "<b>Password</b> must be 12 characters",
        "<token>{{ value }}</token>",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7VJTUt9Us8cKjMzEfYyjiWA4R4 user@host",
        "身份证 110105194912310021 (wrong check)",
        "ISBN 978-0-306-40615-7",
        "v1.2.3-beta.4+build.5678",
    ],
)
def test_look_alikes_stay_intact(text: str) -> None:
    assert found(text) == []


def test_aba_checksum() -> None:
    assert aba_valid("021000021") and aba_valid("011000015")
    assert not aba_valid("021000022")  # a wrong check digit
    assert not aba_valid("000000000")  # no Federal Reserve district 00
    assert not aba_valid("12345678")


def test_full_width_values_are_redacted_in_place() -> None:
    guard = Guard(GuardConfig(pii=Action.REDACT))
    text = f"身份证号：{WIDE_ID}，谢谢"
    body = guard.scan_request({"messages": [{"role": "user", "content": text}]}).body
    assert body["messages"][0]["content"] == "身份证号：[REDACTED:PRC_ID]，谢谢"


ADVERSARIAL = [
    "passport " * 12_000,
    "passport no. " + "A1" * 50_000,
    "账号" * 30_000 + "1" * 100,
    "account number " + "1 " * 50_000,
    "sort code " + "12-34-" * 20_000,
    "routing " + "0" * 100_000,
    "1 " * 60_000,
    "sig=" + "%2B" * 40_000,
    "password is " * 10_000,
    "token " + "a1" * 60_000,
    "<password>" * 12_000,
    '<add key="password" value="' * 5_000,
    "<" + "a" * 100_000,
    "Q~" * 60_000,
    "SG." * 40_000,
    "-----BEGIN PRIVATE KEY-----\\n" + "\\n" * 50_000,
    "０" * 100_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:16]))
def test_no_pattern_is_slow_on_adversarial_input(text: str) -> None:
    """About 120 KB of each: linear patterns take well under a second."""
    started = time.process_time()
    SCANNER.find(text)
    assert time.process_time() - started < 2.0
