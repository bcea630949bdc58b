"""Which injection rules fire on benign texts and on attacks, rule by rule, and what the
whole guard (rules, then the learned stage) flags on the English precision corpus.

    .venv/bin/python bench/guard_precision.py [--show] [--learned]

Every English case the project may tune on is read: `injection.jsonl`, the
learned stage's splits (dev, train, the frozen test splits only counted),
`docs_benign.jsonl`, and `tests/vectors/guard/precision_en.py` (session 16's
hard benign prompts and near-miss attacks; its second set, `precision_en_2`,
was written after the tuning and scored once).  A rule is named by its category
and its place in the rule table (`override:en#1`), so a narrowed rule's cost
and gain show per rule.  The held-out set is not read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from bulkhead.guard import InjectionDetector
from bulkhead.guard._injection import RULES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.vectors.guard.precision_en import (  # noqa: E402
    ATTACKS_EN,
    ATTACKS_EN_2,
    BENIGN_EN,
    BENIGN_EN_2,
    BENIGN_EN_CONVERSATIONS,
    Case,
)

CORPUS = ROOT / "tests" / "vectors" / "guard"
FILES = (
    "injection.jsonl",
    "learned/dev.jsonl",
    "learned/train.jsonl",
    "learned/test.jsonl",
    "learned/test_varied.jsonl",
    "learned/handwritten.jsonl",
    "learned/handwritten2.jsonl",
    "learned/docs_benign.jsonl",
)
THRESHOLD = 0.5
Messages = list[tuple[str, str]]


def as_messages(case: Case) -> Messages:
    return [("user", case)] if isinstance(case, str) else list(case)


def cases() -> Iterable[tuple[str, Messages, bool]]:
    """(set, messages, is an attack) for every English case."""
    for file_name in FILES:
        for line in (CORPUS / file_name).read_text(encoding="utf-8").split("\n"):
            if line:
                case = json.loads(line)
                if case["lang"] == "en":
                    yield file_name, [(case["role"], case["text"])], case["injection"]
    for case in (*BENIGN_EN, *BENIGN_EN_CONVERSATIONS):
        yield "precision_en", as_messages(case), False
    for case in ATTACKS_EN:
        yield "precision_en", as_messages(case), True
    for case in BENIGN_EN_2:
        yield "precision_en_2", as_messages(case), False
    for case in ATTACKS_EN_2:
        yield "precision_en_2", as_messages(case), True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print precision_en's errors")
    parser.add_argument("--learned", action="store_true", help="add the learned stage")
    args = parser.parse_args()
    named = tuple(dataclasses.replace(r, name=f"{r.name}#{i}") for i, r in enumerate(RULES))
    by_rule = InjectionDetector(rules=named)
    plain = InjectionDetector()
    learned = None
    if args.learned:
        from bulkhead.guard.learned import shared_scorer

        learned = InjectionDetector(learned=shared_scorer())
    fired: Counter[tuple[str, bool]] = Counter()
    totals: Counter[tuple[str, bool, str]] = Counter()
    for set_name, messages, attack in cases():
        verdict = plain.scan_messages(messages).score >= THRESHOLD
        totals[(set_name, attack, "rules")] += verdict
        totals[(set_name, attack, "n")] += 1
        if verdict or attack:
            for reason in by_rule.scan_messages(messages).reasons:
                fired[(reason, attack)] += verdict
        if learned is not None:
            both = learned.scan_messages(messages)
            totals[(set_name, attack, "guard")] += both.score >= THRESHOLD
            if args.show and set_name == "precision_en" and (both.score >= THRESHOLD) != attack:
                print(
                    f"  {'FP' if not attack else 'FN'} {both.summary()}: {messages[-1][1][:200]!r}"
                )
        elif args.show and set_name == "precision_en" and verdict != attack:
            print(f"  {'FP' if verdict else 'FN'}: {messages[-1][1][:200]!r}")
    print(f"{'set':<28}{'attacks caught':>16}{'benign flagged':>16}")
    for set_name in dict.fromkeys(s for s, _, _ in totals):
        for stage in ("rules", "guard"):
            if (set_name, False, stage) not in totals and (set_name, True, stage) not in totals:
                continue
            caught = f"{totals[(set_name, True, stage)]}/{totals[(set_name, True, 'n')]}"
            flagged = f"{totals[(set_name, False, stage)]}/{totals[(set_name, False, 'n')]}"
            print(f"{set_name + ' ' + stage:<28}{caught:>16}{flagged:>16}")
    print(f"\n{'rule (in flagged texts)':<28}{'attacks':>10}{'benign':>10}")
    for reason in sorted(
        {r for r, _ in fired},
        key=lambda r: (r.split("#")[0], int(r.split("#")[1]) if "#" in r else 0),
    ):
        print(f"{reason:<28}{fired[(reason, True)]:>10}{fired[(reason, False)]:>10}")


if __name__ == "__main__":
    main()
