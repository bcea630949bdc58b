"""The injection guard on editing requests: benign texts handed over to proofread,
translate, summarise or answer, and near-miss attacks that use such a request as cover.

    .venv/bin/python bench/guard_edit.py [--show] [--learned]

Reads `tests/vectors/guard/precision_edit.py` (session 17, frozen before the rules
were narrowed for it) and prints, per language, how many attacks the rules (and,
with `--learned`, the whole guard) flag and how many benign requests they flag,
at the 0.5 threshold; `--show` prints each error with the reasons.  The held-out
set is not read here.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from bulkhead.guard import InjectionDetector

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.vectors.guard.precision_edit import (  # noqa: E402
    ATTACKS_EDIT_EN,
    ATTACKS_EDIT_ZH,
    BENIGN_EDIT_EN,
    BENIGN_EDIT_ZH,
    Case,
)

THRESHOLD = 0.5
SETS: tuple[tuple[str, bool, list[Case]], ...] = (
    ("en", False, BENIGN_EDIT_EN),
    ("zh", False, BENIGN_EDIT_ZH),
    ("en", True, ATTACKS_EDIT_EN),
    ("zh", True, ATTACKS_EDIT_ZH),
)


def as_messages(case: Case) -> list[tuple[str, str]]:
    return [("user", case)] if isinstance(case, str) else list(case)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print each error and its reasons")
    parser.add_argument("--learned", action="store_true", help="add the learned stage")
    args = parser.parse_args()
    stages = {"rules": InjectionDetector()}
    if args.learned:
        from bulkhead.guard.learned import shared_scorer

        stages["guard"] = InjectionDetector(learned=shared_scorer())
    flagged: Counter[tuple[str, str, bool]] = Counter()
    for lang, attack, cases in SETS:
        for case in cases:
            messages = as_messages(case)
            for stage, detector in stages.items():
                result = detector.scan_messages(messages)
                hit = result.score >= THRESHOLD
                flagged[(stage, lang, attack)] += hit
                if args.show and hit != attack:
                    kind = "FN" if attack else "FP"
                    print(f"  {stage} {kind} {lang} {result.summary()}: {messages[-1][1][:160]!r}")
    print(f"{'stage':<8}{'lang':<6}{'attacks caught':>16}{'benign flagged':>16}")
    for stage in stages:
        for lang in ("en", "zh"):
            sizes = {a: len(c) for lg, a, c in SETS if lg == lang}
            caught = f"{flagged[(stage, lang, True)]}/{sizes[True]}"
            benign = f"{flagged[(stage, lang, False)]}/{sizes[False]}"
            print(f"{stage:<8}{lang:<6}{caught:>16}{benign:>16}")


if __name__ == "__main__":
    main()
