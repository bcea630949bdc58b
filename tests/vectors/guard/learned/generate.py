# ruff: noqa: E501, RUF001 - data: Chinese fillers keep their full-width punctuation.
"""Generate the learned guard's data: `train.jsonl`, `dev.jsonl`, `test.jsonl`.

    python -m tests.vectors.guard.learned.generate

Templates and fillers are in `texts_en.py` and `texts_zh.py` (written for this
project; see DATA_SOURCES.md).  Each template is a pattern; a pattern's split
is drawn from the SHA-256 of its language, kind and index (15 % test, 15 % dev),
so no test phrasing is seen in training (fillers are shared: see the caveats in
DATA_SOURCES.md).  Obfuscated variants (zero-width, homoglyph, spacing,
full-width, leetspeak, separators) keep their source's pattern and split.
Every random choice comes from `random.Random(seed)`: the files are identical
on every run; `test.jsonl` is frozen (its SHA-256 is pinned in a test).
The hand-written texts of `varied_en.py` / `varied_zh.py` (session 11) are
composed by `varied.py`, appended to train and dev, and their own test split
is `test_varied.jsonl`, pinned like the first.  The third hand's texts
(`hand3.py`, session 12), the licensed public prompts (`public/`,
session 14), the fourth hand's texts (`hand4.py`, session 14), the fifth
(`hand5.py`, session 15) and the sixth (`hand6.py`, session 15) are appended to
train and dev only; the seventh (`hand7.py`, session 17) is not appended yet.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

from tests.vectors.guard.learned import hand3, hand4, hand5, hand6, texts_en, texts_zh, varied

HERE = Path(__file__).resolve().parent
SPLITS = ("train", "dev", "test")
PER_TEMPLATE = {
    "override": 24,
    "roleplay": 24,
    "exfiltration": 24,
    "indirect": 30,
    "benign": 24,
    "general": 48,
}
PLANTED = 0.8
_BOUNDARY = re.compile(r"(?<=[.!?。！？])\s*")
_SLOT = re.compile(r"\{([A-Z]+)(!?)\}")
ZW = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
HOMO = str.maketrans("aeopcxiy", "аеорсхіу")  # Cyrillic look-alikes
LEET = str.maketrans("aeiost", "431057")

# Everyday requests, so that benign is not only the hard cases.
GENERAL = {
    "en": (
        [
            "Write a {F} about {T}.",
            "Explain {T} to a {U}.",
            "Give me {N} tips for {C}.",
            "What are the pros and cons of {C}?",
            "Help me plan {C} for next week.",
            "Can you check this sentence for grammar: '{SENT}'",
            "Make a shopping list for {C}.",
            "Summarize this: {B} {A}",
            "Rewrite this more formally: {B}",
            "Quiz me on {T} with {N} questions.",
        ],
        {
            "F": [
                "poem",
                "short story",
                "limerick",
                "blog post",
                "product description",
                "haiku",
                "speech",
            ],
            "U": ["five-year-old", "beginner", "university student", "busy manager", "grandparent"],
            "N": ["three", "five", "seven", "ten"],
            "C": [
                "learning to swim",
                "a birthday party",
                "moving house",
                "a job interview",
                "saving money",
                "a road trip",
                "studying for exams",
                "running a meetup",
                "growing tomatoes",
                "cooking rice",
            ],
        },
    ),
    "zh": (
        [
            "写一首关于{T}的{F}。",
            "给{U}解释{T}。",
            "给我{N}条关于{C}的建议。",
            "{C}有什么利弊？",
            "帮我规划下周的{C}。",
            "帮我检查这句话的语法：“{SENT}”",
            "为{C}列一个购物清单。",
            "总结一下：{B}{A}",
            "把这段改得正式一点：{B}",
            "出{N}道关于{T}的题考考我。",
        ],
        {
            "F": ["诗", "短篇故事", "顺口溜", "博客文章", "产品介绍", "绝句", "演讲稿"],
            "U": ["五岁小孩", "初学者", "大学生", "忙碌的经理", "老人"],
            "N": ["三", "五", "七", "十"],
            "C": [
                "学游泳",
                "生日聚会",
                "搬家",
                "求职面试",
                "存钱",
                "自驾游",
                "备考",
                "办活动",
                "种番茄",
                "做饭",
            ],
        },
    ),
}


def split_of(lang: str, kind: str, index: int) -> str:
    digest = hashlib.sha256(f"{lang}:{kind}:{index}".encode()).digest()
    bucket = digest[0] % 20
    return "test" if bucket < 3 else "dev" if bucket < 6 else "train"


def fill(template: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    def one(m: re.Match[str]) -> str:
        value = rng.choice(slots[m.group(1)])
        return value[:1].upper() + value[1:] if m.group(2) else value

    text = template
    for _ in range(4):  # fillers may hold slots themselves ({TASK} holds {H})
        text = _SLOT.sub(one, text)
    return text.replace("{{", "{").replace("}}", "}")


def _zero_width(text: str, rng: random.Random) -> str:
    return "".join(c + (rng.choice(ZW) if c.isalpha() and rng.random() < 0.4 else "") for c in text)


def _homoglyph(text: str, rng: random.Random) -> str:
    return "".join(c.translate(HOMO) if rng.random() < 0.6 else c for c in text)


def _spaced(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    k = rng.randrange(len(words))
    return " ".join(" ".join(w) if i in (k, k + 1) else w for i, w in enumerate(words))


def _full_width(text: str, rng: random.Random) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _leet(text: str, rng: random.Random) -> str:
    return text.translate(LEET)


def _separated(text: str, rng: random.Random) -> str:
    sep = rng.choice(["*", "-", ".", " ", "/"])
    return sep.join(text) if len(text) < 60 else sep.join(text[:40]) + text[40:]


OBFUSCATIONS = {
    "en": (_zero_width, _homoglyph, _spaced, _full_width, _leet),
    "zh": (_zero_width, _separated, _full_width, _homoglyph),
}


def _cases(lang: str, texts: object, rng: random.Random) -> Iterator[dict[str, object]]:
    slots: dict[str, list[str]] = texts.SLOTS  # type: ignore[attr-defined]
    templates: dict[str, list[str]] = texts.TEMPLATES  # type: ignore[attr-defined]
    general, extra = GENERAL[lang]
    groups = {**templates, "general": general}
    for kind, items in groups.items():
        label = kind not in ("benign", "general")
        slots_here = {**slots, **extra} if kind == "general" else slots
        per = PER_TEMPLATE.get(kind, 10)
        for index, template in enumerate(items):
            split = split_of(lang, kind, index)
            seen: set[str] = set()
            for _ in range(per * 3):
                text = fill(template, slots_here, rng)
                if text in seen:
                    continue
                seen.add(text)
                role = "tool" if kind == "indirect" and rng.random() < 0.4 else "user"
                yield {
                    "injection": label,
                    "kind": "benign" if not label else kind,
                    "lang": lang,
                    "pattern": f"{lang}:{kind}:{index}",
                    "role": role,
                    "split": split,
                    "text": text,
                }
                if label and kind != "indirect" and rng.random() < 0.25:
                    transform = rng.choice(OBFUSCATIONS[lang])
                    yield {
                        "injection": True,
                        "kind": "obfuscation",
                        "lang": lang,
                        "pattern": f"{lang}:{kind}:{index}",
                        "role": role,
                        "split": split,
                        "text": transform(text, rng),
                    }
                if len(seen) >= per:
                    break


def _added(lang: str, texts: object, rng: random.Random) -> Iterator[dict[str, object]]:
    """Patterns added after the test split was frozen: train and dev only."""
    slots: dict[str, list[str]] = texts.SLOTS  # type: ignore[attr-defined]
    for kind, items in texts.TEMPLATES_ADDED.items():  # type: ignore[attr-defined]
        for index, template in enumerate(items):
            split = "dev" if split_of(lang, kind, index) == "dev" else "train"
            seen: set[str] = set()
            base = kind.split("-")[0]
            per = {"benign-hard": 48, "benign-twins": 10}.get(kind, PER_TEMPLATE[base])
            label = base != "benign"
            for _ in range(per * 3):
                text = fill(template, slots, rng)
                if text not in seen:
                    seen.add(text)
                    role = "tool" if base == "indirect" and rng.random() < 0.4 else "user"
                    yield {"injection": label, "kind": base, "lang": lang, "pattern":
                           f"{lang}:{kind}:{index}", "role": role, "split": split, "text": text}  # fmt: skip
                if len(seen) >= per:
                    break


def public_split(lang: str, text: str) -> str:
    """A public text's split: dev for a quarter (by the SHA-256 of language and text), else train."""
    bucket = hashlib.sha256(f"public:{lang}:{text}".encode()).digest()[0] % 4
    return "dev" if bucket == 0 else "train"


PLANTED_KINDS = ("indirect", "override", "exfiltration")
"""The third hand's attack kinds planted into public benign texts (`planted_cases`)."""


def public_cases() -> dict[str, list[dict[str, object]]]:
    """The vendored public prompts (`public/*.jsonl`, see `make_public.py`) as cases, plus
    `planted_cases`."""
    out: dict[str, list[dict[str, object]]] = {"train": [], "dev": []}
    benign: list[dict[str, object]] = []
    for path in sorted((HERE / "public").glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").rstrip("\n").split("\n")):
            row = json.loads(line)
            case = {"id": f"public-{path.stem}-{n:05d}", "injection": row["injection"],
                    "kind": row["kind"], "lang": row["lang"], "pattern": f"public:{path.stem}",
                    "role": "user", "text": row["text"]}  # fmt: skip
            out[public_split(row["lang"], row["text"])].append(case)
            if not row["injection"] and len(row["text"]) >= 20:
                benign.append(case)
    for split, case in planted_cases(benign):
        out[split].append(case)
    return out


def planted_cases(benign: list[dict[str, object]]) -> Iterator[tuple[str, dict[str, object]]]:
    """Indirect injections in text we did not write: about `PLANTED` of the public benign
    texts (reviews, task prompts, questions) again with one of the third hand's attacks
    (`PLANTED_KINDS`, same language, same split) at a sentence boundary, as a user's paste or
    a tool result.  A case's split is its public text's (and its attack's)."""
    rng = random.Random(20261214)
    attacks: dict[tuple[str, str], list[str]] = {}
    for lang, texts in hand3.TEXTS.items():
        for kind in PLANTED_KINDS:
            for text in texts.INJECTIONS[kind]:
                attacks.setdefault((lang, hand3.split_of(lang, text)), []).append(text)
    for n, case in enumerate(benign):
        lang, text = str(case["lang"]), str(case["text"])
        split = public_split(lang, text)
        if rng.random() >= PLANTED or not attacks.get((lang, split)):
            continue
        attack = rng.choice(attacks[(lang, split)])
        cuts = [m.end() for m in _BOUNDARY.finditer(text)] + [len(text)]
        at = rng.choice(cuts)
        gap = "" if lang == "zh" else " "
        planted = f"{text[:at]}{gap}{attack}{gap}{text[at:]}".strip()
        source = f"public:planted:{hashlib.sha256(text.encode()).hexdigest()[:8]}"
        yield split, {"id": f"public-planted-{n:05d}", "injection": True, "kind": "indirect",
                      "lang": lang, "pattern": source, "role": rng.choice(("user", "tool")),
                      "text": planted}  # fmt: skip


def render() -> dict[Path, str]:
    rows: dict[str, list[str]] = {s: [] for s in SPLITS}
    for seed, lang, texts in ((20261207, "en", texts_en), (20261208, "zh", texts_zh)):
        rng, added = random.Random(seed), random.Random(seed + 100)
        cases = itertools.chain(_cases(lang, texts, rng), _added(lang, texts, added))
        for n, case in enumerate(cases):
            split = str(case.pop("split"))
            case["id"] = f"gen-{lang}-{n:05d}"
            rows[split].append(json.dumps(case, ensure_ascii=False, sort_keys=True))
    for line in (HERE / "docs_benign.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        rows[case.pop("split")].append(json.dumps(case, ensure_ascii=False, sort_keys=True))
    files = {HERE / f"{s}.jsonl": "\n".join(rows[s]) + "\n" for s in SPLITS}
    # The hand-written texts of session 11 (varied.py): train and dev grow; their
    # test cases are a split of their own, so the first test split stays as frozen.
    composed = {s: [json.dumps(c, ensure_ascii=False, sort_keys=True) for c in cases]
                for s, cases in varied.render().items()}  # fmt: skip
    # The third hand (hand3.py, session 12): train and dev only.
    third = {s: [json.dumps(c, ensure_ascii=False, sort_keys=True) for c in cases]
             for s, cases in hand3.render().items()}  # fmt: skip
    # Licensed public prompts (public/, session 14): train and dev only.
    public = {s: [json.dumps(c, ensure_ascii=False, sort_keys=True) for c in cases]
              for s, cases in public_cases().items()}  # fmt: skip
    # The fourth hand (hand4.py, session 14): train and dev only.
    fourth = {s: [json.dumps(c, ensure_ascii=False, sort_keys=True) for c in cases]
              for s, cases in hand4.render().items()}  # fmt: skip
    # The fifth hand (hand5.py, session 15): train and dev only.
    fifth = {s: [json.dumps(c, ensure_ascii=False, sort_keys=True) for c in cases]
             for s, cases in hand5.render().items()}  # fmt: skip
    # The sixth hand (hand6.py, session 15, issue 19): train and dev only.
    sixth = {s: [json.dumps(c, ensure_ascii=False, sort_keys=True) for c in cases]
             for s, cases in hand6.render().items()}  # fmt: skip
    # The seventh hand (hand7.py, session 17, issue 19) is written and tested but not
    # appended: trained with it, the English leave-one-hand-out folds fell (docs/benchmarks.md,
    # session 17). Appending `hand7.render()` like the sixth is the whole change.
    for s in ("train", "dev"):
        files[HERE / f"{s}.jsonl"] += (
            "\n".join(composed[s] + third[s] + public[s] + fourth[s] + fifth[s] + sixth[s]) + "\n"
        )
    files[HERE / "test_varied.jsonl"] = "\n".join(composed["test"]) + "\n"
    return files


if __name__ == "__main__":
    for path, text in render().items():
        path.write_text(text, encoding="utf-8")
