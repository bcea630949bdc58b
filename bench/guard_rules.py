"""The injection rules alone: recall and false-positive rate per set and language.

    .venv/bin/python bench/guard_rules.py [--show-fp] [--show-fn]

Scores every labelled injection set the project may tune on (the rules'
corpus `injection.jsonl`, by group, and the learned stage's splits, by
hand) with `InjectionDetector()` - rules only, no learned stage - at the
0.5 threshold, so a change to a rule shows its cost and gain on each set.
The independent held-out set is not read here: only the lead scores it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from bulkhead.guard import InjectionDetector

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "guard"
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
        counts: Counter[tuple[str, str, bool, bool]] = Counter()
        for line in (CORPUS / file_name).read_text(encoding="utf-8").split("\n"):
            if not line:
                continue
            case: dict[str, Any] = json.loads(line)
            hit = detector.scan_messages([(case["role"], case["text"])]).score >= THRESHOLD
            group = group_of(file_name, case["id"])
            counts[(group, case["lang"], case["injection"], hit)] += 1
            if (args.show_fp and hit and not case["injection"]) or (
                args.show_fn and case["injection"] and not hit
            ):
                print(f"  {'FP' if hit else 'FN'} {case['id']}: {case['text'][:300]!r}")
        for group, lang in sorted({(g, la) for g, la, _, _ in counts}):
            tp, fn = counts[(group, lang, True, True)], counts[(group, lang, True, False)]
            fp, tn = counts[(group, lang, False, True)], counts[(group, lang, False, False)]
            recall = f"{tp}/{tp + fn} {tp / (tp + fn):.3f}" if tp + fn else "-"
            fpr = f"{fp}/{fp + tn} {fp / (fp + tn):.3f}" if fp + tn else "-"
            print(f"{name:<14}{group:<22}{lang:<5}{recall:>16}{fpr:>16}")


if __name__ == "__main__":
    main()
