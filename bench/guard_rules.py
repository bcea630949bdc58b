"""The injection rules alone: recall and false-positive rate per set and language.

    .venv/bin/python bench/guard_rules.py [--show-fp] [--show-fn]

Scores every labelled injection set the project may tune on (the rules'
corpus `injection.jsonl`, by group, and the learned stage's splits, by
hand) with `InjectionDetector()` - rules only, no learned stage - at the
0.5 threshold, so a change to a rule shows its cost and gain on each set.
The hand-written sources of those splits (the hand modules' attacks and
benign texts, before they are planted in carriers, and the meta texts) are
scored as written too (`sources`), so a rule's false positives on every
benign text the project has show.  The independent held-out set is not read
here: only the lead scores it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bulkhead.guard import InjectionDetector

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.vectors.guard import texts_meta_en, texts_meta_zh  # noqa: E402
from tests.vectors.guard.learned import (  # noqa: E402
    hand3_en,
    hand3_zh,
    hand4_en,
    hand4_zh,
    hand5_en,
    hand5_zh,
    varied_en,
    varied_zh,
)

CORPUS = ROOT / "tests" / "vectors" / "guard"
SETS = (
    ("injection.jsonl", "rules corpus"),
    ("learned/dev.jsonl", "dev"),
    ("learned/train.jsonl", "train"),
    ("learned/test.jsonl", "test"),
    ("learned/test_varied.jsonl", "test_varied"),
    ("learned/handwritten.jsonl", "handwritten"),
    ("learned/handwritten2.jsonl", "handwritten2"),
    ("learned/docs_benign.jsonl", "docs_benign"),
)
"""(file, name); each file is split by the id's first part (its source)."""
THRESHOLD = 0.5
HANDS = (hand3_en, hand3_zh, hand4_en, hand4_zh, hand5_en, hand5_zh, varied_en, varied_zh)
"""The hand modules: `INJECTIONS` (by kind) and `BENIGN`, each in the language of its name."""

Case = tuple[str, str, bool, str, str]
"""(group, lang, injection, role, text)"""


def source_cases() -> list[Case]:
    """The hand-written texts as written, and the meta texts, each once."""
    cases: list[Case] = []
    for module in HANDS:
        name = module.__name__.rsplit(".", 1)[-1]
        lang = name.rsplit("_", 1)[-1]
        for texts in module.INJECTIONS.values():
            cases += [(name.removesuffix(f"_{lang}"), lang, True, "user", t) for t in texts]
        cases += [(name.removesuffix(f"_{lang}"), lang, False, "user", t) for t in module.BENIGN]
    for lang, meta in (("en", texts_meta_en), ("zh", texts_meta_zh)):
        suffix = lang.upper()
        cases += [("meta", lang, False, "user", t) for t in getattr(meta, f"META_BENIGN_{suffix}")]
        cases += [
            ("meta", lang, True, "user", t) for t in getattr(meta, f"WRAPPED_ATTACKS_{suffix}")
        ]
    return cases


def group_of(file_name: str, case_id: str) -> str:
    """The part of a set a case belongs to: its id without the running number."""
    head = case_id.rsplit("-", 1)[0]
    if file_name == "injection.jsonl":
        return head.removesuffix("-en").removesuffix("-zh")
    return head.split("-", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-fp", action="store_true", help="print the benign texts flagged")
    parser.add_argument("--show-fn", action="store_true", help="print the attacks missed")
    parser.add_argument("--only", default="", help="score only files whose path contains this")
    args = parser.parse_args()
    detector = InjectionDetector()
    print(f"{'set':<14}{'group':<22}{'lang':<5}{'recall':>16}{'FPR':>16}")
    for file_name, name in SETS:
        if args.only not in file_name:
            continue
        cases: list[Case] = []
        for line in (CORPUS / file_name).read_text(encoding="utf-8").split("\n"):
            if line:
                case: dict[str, Any] = json.loads(line)
                group = group_of(file_name, case["id"])
                cases.append((group, case["lang"], case["injection"], case["role"], case["text"]))
        report(detector, name, cases, args)
    if args.only in "sources":
        report(detector, "sources", source_cases(), args)


def report(
    detector: InjectionDetector, name: str, cases: list[Case], args: argparse.Namespace
) -> None:
    """One line per group and language: recall and false-positive rate at `THRESHOLD`."""
    counts: Counter[tuple[str, str, bool, bool]] = Counter()
    for group, lang, injection, role, text in cases:
        hit = detector.scan_messages([(role, text)]).score >= THRESHOLD
        counts[(group, lang, injection, hit)] += 1
        if (args.show_fp and hit and not injection) or (args.show_fn and injection and not hit):
            print(f"  {'FP' if hit else 'FN'} {name}/{group}: {text[:300]!r}")
    for group, lang in sorted({(g, la) for g, la, _, _ in counts}):
        tp, fn = counts[(group, lang, True, True)], counts[(group, lang, True, False)]
        fp, tn = counts[(group, lang, False, True)], counts[(group, lang, False, False)]
        recall = f"{tp}/{tp + fn} {tp / (tp + fn):.3f}" if tp + fn else "-"
        fpr = f"{fp}/{fp + tn} {fp / (fp + tn):.3f}" if fp + tn else "-"
        print(f"{name:<14}{group:<22}{lang:<5}{recall:>16}{fpr:>16}")


if __name__ == "__main__":
    main()
