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

import hashlib
import random
from collections.abc import Iterator
from types import ModuleType

from tests.vectors.guard.learned import hand3_en, hand3_zh
from tests.vectors.guard.learned.varied import _DISGUISES, _REQUESTS, Case, _case, compose_benign

TRAIN_COPIES = 3
TEXTS: dict[str, ModuleType] = {"en": hand3_en, "zh": hand3_zh}
_PLANTED = ("indirect", "smuggling")


def split_of(lang: str, text: str) -> str:
    bucket = hashlib.sha256(f"hand3:{lang}:{text}".encode()).digest()[0] % 20
    return "dev" if bucket < 5 else "train"


def _mine(lang: str, split: str, items: list[str]) -> list[str]:
    return [t for t in items if split_of(lang, t) == split]


def _attacks(lang: str, split: str, rng: random.Random) -> Iterator[Case]:
    texts, other = TEXTS[lang], TEXTS["zh" if lang == "en" else "en"]
    carriers = _mine(lang, split, texts.CARRIERS)
    foreign = _mine("zh" if lang == "en" else "en", split, other.CARRIERS)
    everyday = _mine(lang, split, texts.BENIGN)
    for kind, items in texts.INJECTIONS.items():
        for text in _mine(lang, split, items):
            source = f"hand3:{lang}:{kind}:{hashlib.sha256(text.encode()).hexdigest()[:8]}"
            yield _case(lang, kind, True, rng.choice(("user", "tool")) if kind == "indirect"
                        else "user", text, source)  # fmt: skip
            if kind in _PLANTED or rng.random() < 0.3:
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


def _benign(lang: str, split: str, rng: random.Random) -> Iterator[Case]:
    texts = TEXTS[lang]
    prompts, carriers = _mine(lang, split, texts.BENIGN), _mine(lang, split, texts.CARRIERS)
    return compose_benign(lang, "hand3", prompts, carriers, _mine(lang, split, texts.NOTES), rng)


def render() -> dict[str, list[Case]]:
    """The composed cases of train (composed `TRAIN_COPIES` times) and dev."""
    out: dict[str, list[Case]] = {"train": [], "dev": []}
    for seed, lang in ((20261213, "en"), (20261214, "zh")):
        for split in out:
            rng = random.Random(f"{seed}:{split}")
            seen: set[str] = set()
            for _ in range(TRAIN_COPIES if split == "train" else 1):
                for case in [*_attacks(lang, split, rng), *_benign(lang, split, rng)]:
                    if case["text"] not in seen:
                        seen.add(str(case["text"]))
                        case["id"] = f"hand3-{lang}-{split}-{len(seen):05d}"
                        out[split].append(case)
    return out
