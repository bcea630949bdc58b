# ruff: noqa: RUF001 - Cyrillic look-alikes and full-width punctuation are the data.
"""Compose the hand-written texts of `varied_en.py` / `varied_zh.py` into labelled cases.

Each text (attack, benign prompt, carrier document, planted note) gets a split
from the SHA-256 of its language and text: 20 % test, 15 % dev, 65 % train.
Cases are built only from texts of one split, so a test case shares no
hand-written sentence with train or dev:

- every attack as written; planted instructions also inside a carrier (a mail,
  page, tool result, code file) read as a tool result or pasted by the user;
  other attacks also after an ordinary request; about half also disguised
  (zero-width, bidi marks, look-alikes, spacing, leetspeak, full width,
  separators), as kind `obfuscation`;
- every benign prompt as written, some followed by a carrier to work on;
  every carrier alone and with a planted note meant for people (benign).

The train split is composed `TRAIN_COPIES` times (other carriers, other
disguises); dev and test once.  The test split (`test_varied.jsonl`) is pinned
in `test_learned_data.py`: it was written before any model saw these texts.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Iterator
from types import ModuleType

from tests.vectors.guard.learned import varied_en, varied_zh

Case = dict[str, object]
TRAIN_COPIES = 3
_ZW = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
_BIDI = ("\u202e", "\u202d", "\u2066", "\u2069", "\u200f")
_HOMO = str.maketrans("aeopcxiyAEOPCHKMT", "аеорсхіуАЕОРСНКМТ")
_LEET = str.maketrans("aeiostAEIOST", "4310574310$7")
_REQUESTS = {
    "en": ("Summarise this for me:\n\n", "Can you translate this into Spanish?\n\n",
           "What are the key points here?\n\n", "", "Here's what the tool returned:\n"),
    "zh": ("帮我总结一下：\n\n", "把下面这段翻译成英文：\n\n", "这里面的要点是什么？\n\n", "",
           "工具返回的结果如下：\n"),
}  # fmt: skip


def split_of(lang: str, text: str) -> str:
    bucket = hashlib.sha256(f"varied:{lang}:{text}".encode()).digest()[0] % 20
    return "test" if bucket < 4 else "dev" if bucket < 7 else "train"


def _zero_width(text: str, rng: random.Random) -> str:
    return "".join(c + (rng.choice(_ZW) if c.isalnum() and rng.random() < 0.5 else "")
                   for c in text)  # fmt: skip


def _bidi(text: str, rng: random.Random) -> str:
    return "".join(c + (rng.choice(_BIDI) if c == " " or rng.random() < 0.1 else "") for c in text)


def _homoglyph(text: str, rng: random.Random) -> str:
    return "".join(c.translate(_HOMO) if rng.random() < 0.7 else c for c in text)


def _spaced(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    start = rng.randrange(max(1, len(words) - 3))
    return " ".join(" ".join(w) if start <= i < start + 4 else w for i, w in enumerate(words))


def _leet(text: str, rng: random.Random) -> str:
    return text.translate(_LEET)


def _full_width(text: str, rng: random.Random) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _separated(text: str, rng: random.Random) -> str:
    sep = rng.choice(["*", "-", ".", " ", "/", "|", "_"])
    cut = min(len(text), rng.randrange(12, 40))
    return sep.join(text[:cut]) + text[cut:]


_DISGUISES: dict[str, tuple[Callable[[str, random.Random], str], ...]] = {
    "en": (_zero_width, _bidi, _homoglyph, _spaced, _leet, _full_width),
    "zh": (_zero_width, _bidi, _separated, _full_width, _separated),
}


def _case(lang: str, kind: str, injection: bool, role: str, text: str, source: str) -> Case:
    return {"injection": injection, "kind": kind, "lang": lang, "pattern": source, "role": role,
            "text": text}  # fmt: skip


def _mine(lang: str, split: str, items: list[str]) -> list[str]:
    return [t for t in items if split_of(lang, t) == split]


def _attacks(lang: str, texts: ModuleType, split: str, rng: random.Random) -> Iterator[Case]:
    mine = functools.partial(_mine, lang, split)
    carriers, requests = mine(texts.CARRIERS), _REQUESTS[lang]
    everyday = mine(texts.BENIGN)
    for kind, items in texts.INJECTIONS.items():
        for n, text in enumerate(mine(items)):
            source = f"varied:{lang}:{kind}:{hashlib.sha256(text.encode()).hexdigest()[:8]}"
            yield _case(lang, kind, True, "tool" if kind == "indirect" and n % 2 else "user",
                        text, source)  # fmt: skip
            if kind == "indirect" and carriers:
                doc = rng.choice(carriers).replace("{}", text, 1)
                role = rng.choice(("tool", "user"))
                lead = rng.choice(requests) if role == "user" else ""
                yield _case(lang, kind, True, role, lead + doc, source)
            elif everyday:
                yield _case(lang, kind, True, "user", f"{rng.choice(everyday)} {text}", source)
            if rng.random() < 0.6:
                disguised = rng.choice(_DISGUISES[lang])(text, rng)
                yield _case(lang, "obfuscation", True, "user", disguised, source)


def compose_benign(
    lang: str,
    prefix: str,
    prompts: list[str],
    carriers: list[str],
    notes: list[str],
    rng: random.Random,
) -> Iterator[Case]:
    """Benign cases of one split: every prompt (some followed by a carrier to work on), every
    carrier alone and with notes meant for people planted in it, every note alone.  Shared by
    `varied.py` and `hand3.py` (`prefix` names the set in each case's pattern)."""
    for text in prompts:
        yield _case(lang, "benign", False, "user", text, f"{prefix}:{lang}:benign")
        if carriers and rng.random() < 0.3:
            doc = rng.choice(carriers).replace("{}", "", 1)
            yield _case(
                lang, "benign", False, "user", f"{text}\n\n{doc}", f"{prefix}:{lang}:benign"
            )
    source = f"{prefix}:{lang}:doc"
    for doc in carriers:
        role = rng.choice(("tool", "user"))
        lead = rng.choice(_REQUESTS[lang]) if role == "user" else ""
        yield _case(lang, "benign", False, role, lead + doc.replace("{}", "", 1), source)
        for note in rng.sample(notes, min(len(notes), 3)):
            role = rng.choice(("tool", "user"))
            yield _case(lang, "benign", False, role, doc.replace("{}", note, 1), source)
    for note in notes:
        yield _case(lang, "benign", False, "user", note, f"{prefix}:{lang}:note")


def _benign(lang: str, texts: ModuleType, split: str, rng: random.Random) -> Iterator[Case]:
    mine = functools.partial(_mine, lang, split)
    prompts, carriers, notes = mine(texts.BENIGN), mine(texts.CARRIERS), mine(texts.NOTES)
    return compose_benign(lang, "varied", prompts, carriers, notes, rng)


def render() -> dict[str, list[Case]]:
    """The composed cases of every split (train composed `TRAIN_COPIES` times)."""
    out: dict[str, list[Case]] = {"train": [], "dev": [], "test": []}
    for seed, lang, texts in ((20261211, "en", varied_en), (20261212, "zh", varied_zh)):
        for split in out:
            rng = random.Random(f"{seed}:{split}")
            seen: set[str] = set()
            for _ in range(TRAIN_COPIES if split == "train" else 1):
                for case in [*_attacks(lang, texts, split, rng), *_benign(lang, texts, split, rng)]:
                    if case["text"] not in seen:
                        seen.add(str(case["text"]))
                        case["id"] = f"varied-{lang}-{split}-{len(seen):05d}"
                        out[split].append(case)
    return out
