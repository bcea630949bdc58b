# ruff: noqa: E501, RUF001 - the corpus is data: long Chinese and English texts.
"""Generate the guard corpus: ``python -m tests.vectors.guard.generate``.

Every random choice comes from `random.Random` with a fixed seed per
section, so running this again rewrites identical files;
`test_guard_corpus.py` checks that it does.  Check digits (Luhn, GB 11643,
ISO 13616) are computed here by code written for this file, not imported
from `bulkhead.guard`, so the corpus cross-checks the detectors.  See
README.md.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.vectors.guard.texts import (
    BENIGN_EN,
    BENIGN_TOOL,
    BENIGN_ZH,
    FIXED_NEGATIVES,
    FORMAT_NEGATIVES,
    FORMATS,
    HELD_OUT_2_BENIGN,
    HELD_OUT_2_INJECTIONS,
    HELD_OUT_BENIGN,
    HELD_OUT_INJECTIONS,
    INDIRECT,
    INJECTIONS_EN,
    INJECTIONS_ZH,
    INTERNATIONAL_PHONES,
    OBFUSCATED,
    PII_TEMPLATES,
)
from tests.vectors.guard.texts_meta_en import (
    META_BENIGN_EN,
    META_BENIGN_EN_2,
    WRAPPED_ATTACKS_EN,
    WRAPPED_ATTACKS_EN_2,
)
from tests.vectors.guard.texts_meta_zh import (
    META_BENIGN_ZH,
    META_BENIGN_ZH_2,
    WRAPPED_ATTACKS_ZH,
    WRAPPED_ATTACKS_ZH_2,
)

HERE = Path(__file__).resolve().parent
PII = HERE / "pii.jsonl"
INJECTION = HERE / "injection.jsonl"
B62 = string.ascii_letters + string.digits


# --- Reference check digits (independent of bulkhead.guard) ------------------------------------


def luhn_complete(body: str) -> str:
    """`body` plus the digit that makes the whole Luhn-valid."""
    digits = [int(c) for c in body + "0"]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    return luhn_complete(number[:-1]) == number


def prc_complete(first17: str) -> str:
    weights = [2 ** (17 - i) % 11 for i in range(17)]  # GB 11643: W_i = 2^(i-1) mod 11
    remainder = sum(int(c) * w for c, w in zip(first17, weights, strict=True)) % 11
    return first17 + "10X98765432"[remainder]


def iban_complete(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


# --- Value generators ---------------------------------------------------------------------------

CARD_PREFIXES = ["4", "51", "53", "55", "2221", "2720", "34", "37", "6011", "65", "62", "35", "36"]
REGIONS = ["110105", "310104", "440305", "510107", "330106", "420111", "320102", "500103"]


def card(rng: random.Random, length: int | None = None, prefix: str | None = None) -> str:
    prefix = prefix or rng.choice(CARD_PREFIXES)
    length = length or rng.choice(
        [15 if prefix in ("34", "37") else 16, 16, 19 if prefix == "62" else 16]
    )
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return luhn_complete(body)


def grouped(number: str, rng: random.Random) -> str:
    style = rng.choice(["compact", "space", "dash"])
    if style == "compact":
        return number
    sep = " " if style == "space" else "-"
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def prc_id(rng: random.Random) -> str:
    year, month, day = rng.randint(1950, 2008), rng.randint(1, 12), rng.randint(1, 28)
    first17 = f"{rng.choice(REGIONS)}{year}{month:02d}{day:02d}{rng.randint(0, 999):03d}"
    return prc_complete(first17)


def cn_mobile(rng: random.Random) -> str:
    prefix = rng.choice(["138", "139", "135", "150", "158", "186", "187", "177", "199", "136"])
    return prefix + "".join(rng.choice(string.digits) for _ in range(8))


def iban(rng: random.Random) -> str:
    country, pattern = rng.choice(
        [("DE", "n18"), ("FR", "n23"), ("NL", "AAAAn10"), ("GB", "AAAAn14"), ("ES", "n20"),
         ("CH", "n17"), ("BE", "n12"), ("IT", "An22")]
    )  # fmt: skip
    letters = pattern.count("A")
    digits = int(pattern[pattern.index("n") + 1 :])
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters))
    bban += "".join(rng.choice(string.digits) for _ in range(digits))
    return iban_complete(country, bban)


def spaced_iban(value: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return value
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def email(rng: random.Random) -> str:
    first = rng.choice(
        [
            "zhang.wei",
            "li.na",
            "wang_fang",
            "john.smith",
            "maria",
            "a.chen",
            "ops",
            "liu.yang88",
            "s.okafor",
            "billing-team",
            "k.tanaka",
            "dev+alerts",
        ]
    )
    domain = rng.choice(
        [
            "example.com",
            "mail.example.org",
            "corp.example.cn",
            "163.com",
            "qq.com",
            "gmail.com",
            "example.co.uk",
            "company.com.cn",
        ]
    )
    return f"{first}@{domain}"  # fmt: skip


def ipv4(rng: random.Random) -> str:
    first = rng.choice([8, 23, 45, 61, 101, 114, 172, 192, 203, 220])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(4)]
    return rng.choice([f"2001:db8:{groups[0]}::{groups[1]}", "2001:db8:" + ":".join(groups) + ":1:2",
                       f"fe80::{groups[0]}:{groups[1]}"])  # fmt: skip


def token(rng: random.Random, n: int, alphabet: str = B62) -> str:
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            return value


def api_key(rng: random.Random) -> str:
    kind = rng.choice(["openai", "anthropic", "github", "github_pat", "slack", "google", "aws",
                       "bulkhead", "stripe"])  # fmt: skip
    if kind == "openai":
        return "sk-proj-" + token(rng, 48, B62 + "_-")
    if kind == "anthropic":
        return "sk-ant-api03-" + token(rng, 60, B62 + "_-")
    if kind == "github":
        return "ghp_" + token(rng, 36)
    if kind == "github_pat":
        return f"github_pat_{token(rng, 22)}_{token(rng, 59)}"
    if kind == "slack":
        return f"xoxb-{rng.randint(10**10, 10**11)}-{rng.randint(10**10, 10**11)}-{token(rng, 24)}"
    if kind == "google":
        return "AIza" + token(rng, 35, B62 + "_-")
    if kind == "aws":
        return "AKIA" + token(rng, 16, string.ascii_uppercase + "234567")
    if kind == "stripe":
        return "sk_live_" + token(rng, 24)
    return f"bk_{token(rng, 12, 'abcdefghijklmnopqrstuvwxyz234567')}_{token(rng, 43, B62 + '_-')}"


def aws_secret(rng: random.Random) -> str:
    while True:
        value = token(rng, 40, B62 + "/+")
        if value.lower() != value and value.upper() != value:
            return value


def jwt(rng: random.Random) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part({"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"})
    payload = part({"sub": str(rng.randint(1, 10**9)), "iat": 1700000000 + rng.randint(0, 10**7)})
    return f"{header}.{payload}.{token(rng, 43, B62 + '_-')}"


def pem(rng: random.Random) -> str:
    label = rng.choice(["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    lines = [token(rng, 64, B62 + "+/") for _ in range(rng.randint(3, 8))]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"


# --- PII cases ----------------------------------------------------------------------------------

Case = dict[str, Any]

VALUE_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "email": email,
    "phone": lambda r: r.choice([cn_mobile(r), "+86 " + cn_mobile(r), "+86-" + cn_mobile(r)]),
    "prc_id": prc_id,
    "card": lambda r: grouped(card(r), r),
    "iban": lambda r: spaced_iban(iban(r), r),
    "ip_address": lambda r: ipv4(r) if r.random() < 0.7 else ipv6(r),
    "api_key": api_key,
    "cloud_secret": aws_secret,
    "bearer_token": lambda r: token(r, 40, B62 + "-._~"),
    "jwt": jwt,
    "private_key": pem,
}


def _pii_case(case_id: str, lang: str, template: str, entity: str, value: str) -> Case:
    start = template.index("{v}")
    text = template.replace("{v}", value)
    return {
        "id": case_id,
        "lang": lang,
        "text": text,
        "entities": [{"type": entity, "start": start, "end": start + len(value)}],
    }


def pii_positives() -> Iterator[Case]:
    rng = random.Random(20240601)
    for entity, templates in PII_TEMPLATES.items():
        count = 24 if entity in ("email", "phone", "prc_id", "card") else 14
        for i in range(count):
            lang, template = templates[i % len(templates)]
            yield _pii_case(f"{entity}-{i:02d}", lang, template, entity, VALUE_MAKERS[entity](rng))
    for i, number in enumerate(INTERNATIONAL_PHONES):
        lang, template = PII_TEMPLATES["phone"][i % 2]
        yield _pii_case(f"phone-intl-{i:02d}", lang, template, "phone", number)
    # Every card length 13-19, and 19-digit UnionPay, in Chinese text without spaces.
    for length in range(13, 20):
        number = card(rng, length, "4" if length != 19 else "62")
        yield _pii_case(f"card-len-{length}", "zh", "卡号是{v}谢谢", "card", number)
    yield from _multi_entity_cases(rng)
    yield from _format_cases(random.Random(20240603))


def _format_cases(rng: random.Random) -> Iterator[Case]:
    """The hand-written formats of issue 19; cards drawn in the grouping the value names."""
    for i, (lang, entity, template, value) in enumerate(FORMATS):
        if value.startswith("{card:"):
            length, prefix, grouping = value[6:-1].split(":")
            number = card(rng, int(length), prefix)
            sizes = {"6+13": (6, 13), "4x4+3": (4, 4, 4, 4, 3), "4-6-5": (4, 6, 5)}[grouping]
            sep = "-" if "-" in grouping else " "
            parts, at = [], 0
            for size in sizes:
                parts.append(number[at : at + size])
                at += size
            value = sep.join(parts)
        template = template.replace("{{", "{").replace("}}", "}")
        yield _pii_case(f"{entity}-format-{i:02d}", lang, template, entity, value)


def _multi_entity_cases(rng: random.Random) -> Iterator[Case]:
    for i in range(10):
        mail, phone, number = email(rng), cn_mobile(rng), prc_id(rng)
        parts = ["客户信息：邮箱", mail, "，电话", phone, "，身份证", number, "。"]
        spans, text = [], ""
        for j, part in enumerate(parts):
            if j % 2 == 1:
                kind = ("email", "phone", "prc_id")[j // 2]
                spans.append({"type": kind, "start": len(text), "end": len(text) + len(part)})
            text += part
        yield {"id": f"multi-zh-{i:02d}", "lang": "zh", "text": text, "entities": spans}


def pii_negatives() -> Iterator[Case]:
    rng = random.Random(20240602)
    cases: list[tuple[str, str, str]] = []
    for i in range(15):
        number = card(rng, 16, "4")
        bad = number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10)
        cases.append(("en", f"order-luhn-fail-{i:02d}", f"Order #{bad} has shipped."))
        cases.append(("zh", f"order-zh-{i:02d}", f"订单号{_order_number(rng)}已发货，请注意查收。"))
    for i in range(15):
        cases.append(("zh", f"prc-bad-check-{i:02d}", f"编号{_bad_prc_id(rng)}的档案已归档"))
    for i in range(8):
        value = iban(rng)
        broken = value[:2] + f"{(int(value[2:4]) + 1) % 100:02d}" + value[4:]
        cases.append(("en", f"iban-bad-check-{i:02d}", f"Reference {broken} was rejected"))
    for i, text in enumerate([*FIXED_NEGATIVES, *FORMAT_NEGATIVES]):
        lang = "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en"
        cases.append((lang, f"fixed-{i:02d}", text))
    for lang, case_id, text in cases:
        yield {"id": f"negative-{case_id}", "lang": lang, "text": text, "entities": []}


def _order_number(rng: random.Random) -> str:
    """A 13-19 digit number that is not a card: Luhn-invalid or outside the issuer ranges."""
    while True:
        number = rng.choice("123456789") + "".join(
            rng.choice(string.digits) for _ in range(rng.randint(12, 18))
        )
        if not luhn_ok(number) or number[0] in "1789":
            return number


def _bad_prc_id(rng: random.Random) -> str:
    """An ID-shaped number whose check character is wrong (and which is no card either)."""
    while True:
        good = prc_id(rng)
        wrong = rng.choice([c for c in "0123456789X" if c != good[-1]])
        candidate = good[:-1] + wrong
        if not (wrong != "X" and luhn_ok(candidate)):
            return candidate


# --- Injection cases ----------------------------------------------------------------------------


def injection_cases() -> Iterator[Case]:
    groups: list[tuple[str, bool, list[tuple[str, str]]]] = [
        ("inj-en", True, [("user", t) for t in INJECTIONS_EN]),
        ("inj-zh", True, [("user", t) for t in INJECTIONS_ZH]),
        ("inj-obf", True, [("user", t) for t in OBFUSCATED]),
        ("inj-indirect", True, INDIRECT),
        ("benign-en", False, [("user", t) for t in BENIGN_EN]),
        ("benign-zh", False, [("user", t) for t in BENIGN_ZH]),
        ("benign-tool", False, BENIGN_TOOL),
        ("heldout-inj", True, [("user", t) for t in HELD_OUT_INJECTIONS]),
        ("heldout-benign", False, [("user", t) for t in HELD_OUT_BENIGN]),
        ("heldout2-inj", True, [("user", t) for t in HELD_OUT_2_INJECTIONS]),
        ("heldout2-benign", False, [("user", t) for t in HELD_OUT_2_BENIGN]),
        ("meta-benign-en", False, [("user", t) for t in META_BENIGN_EN]),
        ("meta-benign-zh", False, [("user", t) for t in META_BENIGN_ZH]),
        ("wrapped-inj-en", True, [("user", t) for t in WRAPPED_ATTACKS_EN]),
        ("wrapped-inj-zh", True, [("user", t) for t in WRAPPED_ATTACKS_ZH]),
        ("meta2-benign-en", False, [("user", t) for t in META_BENIGN_EN_2]),
        ("meta2-benign-zh", False, [("user", t) for t in META_BENIGN_ZH_2]),
        ("wrapped2-inj-en", True, [("user", t) for t in WRAPPED_ATTACKS_EN_2]),
        ("wrapped2-inj-zh", True, [("user", t) for t in WRAPPED_ATTACKS_ZH_2]),
    ]
    for prefix, label, items in groups:
        for i, (role, text) in enumerate(items):
            lang = "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en"
            yield {"id": f"{prefix}-{i:02d}", "lang": lang, "role": role, "text": text,
                   "injection": label}  # fmt: skip


def render() -> dict[Path, str]:
    """The corpus files' contents, as this generator makes them."""
    out: dict[Path, list[Case]] = {
        PII: [*pii_positives(), *pii_negatives()],
        INJECTION: list(injection_cases()),
    }
    return {
        path: "\n".join(json.dumps(c, ensure_ascii=False, sort_keys=True) for c in cases) + "\n"
        for path, cases in out.items()
    }


def main() -> None:
    for path, text in render().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.name}: {text.count(chr(10))} cases")


if __name__ == "__main__":
    main()
