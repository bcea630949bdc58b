"""Compose the third hand's texts (`hand3_en.py`, `hand3_zh.py`, session 12) into cases.

These texts go to train and dev only (25 % dev, by the SHA-256 of language and
text): the frozen test splits (`test.jsonl`, `test_varied.jsonl`) stay as they
were, and the independent held-out set is the measure of what they bring.
Composition follows `varied.py` (planted instructions inside carriers, attacks
after an ordinary request, disguised copies, benign prompts with documents,
carriers with notes meant for people), plus mixed-language cases: an
instruction of one language planted in a carrier of the other, labelled with
the carrier's language.  Case ids start with `hand3-`.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterator
from types import ModuleType

from tests.vectors.guard.learned import hand3_en, hand3_zh
from tests.vectors.guard.learned.varied import _DISGUISES, _REQUESTS, Case, _case, compose_benign

TRAIN_COPIES = 3
TEXTS: dict[str, ModuleType] = {"en": hand3_en, "zh": hand3_zh}
_PLANTED = ("indirect", "smuggling")


def split_of(lang: str, text: str, hand: str = "hand3") -> str:
    bucket = hashlib.sha256(f"{hand}:{lang}:{text}".encode()).digest()[0] % 20
    return "dev" if bucket < 5 else "train"


def _mine(hand: str, lang: str, split: str, items: list[str]) -> list[str]:
    return [t for t in items if split_of(lang, t, hand) == split]


def _attacks(
    hand: str, texts_of: dict[str, ModuleType], planted: tuple[str, ...], lang: str, split: str,
    rng: random.Random,
) -> Iterator[Case]:  # fmt: skip
    texts, other = texts_of[lang], texts_of["zh" if lang == "en" else "en"]
    carriers = _mine(hand, lang, split, texts.CARRIERS)
    foreign = _mine(hand, "zh" if lang == "en" else "en", split, other.CARRIERS)
    everyday = _mine(hand, lang, split, texts.BENIGN)
    for kind, items in texts.INJECTIONS.items():
        for text in _mine(hand, lang, split, items):
            source = f"{hand}:{lang}:{kind}:{hashlib.sha256(text.encode()).hexdigest()[:8]}"
            yield _case(lang, kind, True, rng.choice(("user", "tool")) if kind == "indirect"
                        else "user", text, source)  # fmt: skip
            if kind in planted or rng.random() < 0.3:
                doc = rng.choice(carriers).replace("{}", text, 1)
                role = rng.choice(("tool", "user"))
                lead = rng.choice(_REQUESTS[lang]) if role == "user" else ""
                yield _case(lang, kind, True, role, lead + doc, source)
            if kind == "indirect" and foreign and rng.random() < 0.4:
                doc = rng.choice(foreign).replace("{}", text, 1)
                other_lang = "zh" if lang == "en" else "en"
                yield _case(other_lang, kind, True, "tool", doc, source)
            if kind != "indirect" and everyday:
                yield _case(lang, kind, True, "user", f"{rng.choice(everyday)} {text}", source)
            if rng.random() < 0.6:
                disguised = rng.choice(_DISGUISES[lang])(text, rng)
                yield _case(lang, "obfuscation", True, "user", disguised, source)


def _benign(hand: str, texts: ModuleType, lang: str, split: str, rng: random.Random
            ) -> Iterator[Case]:  # fmt: skip
    mine = functools.partial(_mine, hand, lang, split)
    return compose_benign(lang, hand, mine(texts.BENIGN), mine(texts.CARRIERS), mine(texts.NOTES),
                          rng)  # fmt: skip


def render_hand(
    hand: str, texts_of: dict[str, ModuleType], planted: tuple[str, ...], seeds: tuple[int, int]
) -> dict[str, list[Case]]:
    """One hand's composed cases of train (composed `TRAIN_COPIES` times) and dev; shared by
    this hand and the fourth (`hand4.py`).  `seeds` are the English and the Chinese seed."""
    out: dict[str, list[Case]] = {"train": [], "dev": []}
    for seed, lang in zip(seeds, ("en", "zh"), strict=True):
        for split in out:
            rng = random.Random(f"{seed}:{split}")
            seen: set[str] = set()
            for _ in range(TRAIN_COPIES if split == "train" else 1):
                attacks = _attacks(hand, texts_of, planted, lang, split, rng)
                for case in [*attacks, *_benign(hand, texts_of[lang], lang, split, rng)]:
                    if case["text"] not in seen:
                        seen.add(str(case["text"]))
                        case["id"] = f"{hand}-{lang}-{split}-{len(seen):05d}"
                        out[split].append(case)
    return out


def render() -> dict[str, list[Case]]:
    """The third hand's composed cases of train and dev."""
    return render_hand("hand3", TEXTS, _PLANTED, (20261213, 20261214))
