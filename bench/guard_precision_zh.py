"""The Chinese injection rules' precision and recall: every Chinese text the project may
tune on, rule by rule, and the hand-written Chinese dev attacks by kind.

    .venv/bin/python bench/guard_precision_zh.py [--show] [--show-fp]

Reads the Chinese cases of `injection.jsonl`, the learned stage's splits (the frozen test
splits only counted), `docs_benign.jsonl`, the hand modules' texts as written (hand3-6,
varied), the meta texts and `tests/vectors/guard/precision_zh.py` (session 17's hard benign
prompts and near-miss attacks, frozen before the rules were changed), with
`InjectionDetector()` - rules only - at the 0.5 threshold.  A rule is named by its category
and its place in the rule table (`override:zh#40`).  The held-out set is not read here.
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
from tests.vectors.guard import texts_meta_zh  # noqa: E402
from tests.vectors.guard.learned import (  # noqa: E402
    hand3_zh,
    hand4_zh,
    hand5_zh,
    hand6_zh,
    varied_zh,
)
from tests.vectors.guard.precision_zh import ATTACKS_ZH, BENIGN_ZH  # noqa: E402

# The files read, the threshold and the message shape: the English bench's (bench/ on the path).
from guard_precision import CORPUS, FILES, THRESHOLD, Messages, as_messages  # noqa: E402

HANDS = (hand3_zh, hand4_zh, hand5_zh, hand6_zh, varied_zh)
HAND_SOURCES = ("hand3", "hand4", "hand5", "hand6", "varied")


def cases() -> Iterable[tuple[str, str, Messages, bool]]:
    """(set, kind, messages, is an attack) for every Chinese case."""
    for file_name in FILES:
        for line in (CORPUS / file_name).read_text(encoding="utf-8").split("\n"):
            if not line:
                continue
            case = json.loads(line)
            if case["lang"] != "zh":
                continue
            set_name = file_name
            if file_name == "learned/dev.jsonl" and case["id"].split("-")[0] in HAND_SOURCES:
                set_name = "dev hand-written"
            yield set_name, case.get("kind", ""), [(case["role"], case["text"])], case["injection"]
    for module in HANDS:
        for kind, texts in module.INJECTIONS.items():
            for text in texts:
                yield "hand sources", kind, [("user", text)], True
        for text in module.BENIGN:
            yield "hand sources", "benign", [("user", text)], False
    for text in (*texts_meta_zh.META_BENIGN_ZH, *texts_meta_zh.META_BENIGN_ZH_2):
        yield "meta", "benign", [("user", text)], False
    for text in (*texts_meta_zh.WRAPPED_ATTACKS_ZH, *texts_meta_zh.WRAPPED_ATTACKS_ZH_2):
        yield "meta", "wrapped", [("user", text)], True
    for case in BENIGN_ZH:
        yield "precision_zh", "benign", as_messages(case), False
    for kind, attacks in ATTACKS_ZH.items():
        for case in attacks:
            yield "precision_zh", kind, as_messages(case), True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print precision_zh's errors")
    parser.add_argument("--show-fp", action="store_true", help="print every benign text flagged")
    args = parser.parse_args()
    named = tuple(dataclasses.replace(r, name=f"{r.name}#{i}") for i, r in enumerate(RULES))
    by_rule = InjectionDetector(rules=named)
    plain = InjectionDetector()
    fired: Counter[tuple[str, bool]] = Counter()
    totals: Counter[tuple[str, bool, str]] = Counter()
    kinds: Counter[tuple[str, str, bool]] = Counter()
    for set_name, kind, messages, attack in cases():
        verdict = plain.scan_messages(messages).score >= THRESHOLD
        totals[(set_name, attack, "flagged")] += verdict
        totals[(set_name, attack, "n")] += 1
        if set_name in ("dev hand-written", "precision_zh", "hand sources") and attack:
            kinds[(set_name, kind, verdict)] += 1
        if verdict:
            for reason in by_rule.scan_messages(messages).reasons:
                fired[(reason, attack)] += 1
        shown = args.show and set_name == "precision_zh" and verdict != attack
        if shown or (args.show_fp and verdict and not attack):
            print(f"  {'FP' if verdict else 'FN'} {set_name}: {messages[-1][1][:200]!r}")
    print(f"{'set':<28}{'attacks caught':>16}{'benign flagged':>16}")
    for set_name in dict.fromkeys(s for s, _, _ in totals):
        caught = f"{totals[(set_name, True, 'flagged')]}/{totals[(set_name, True, 'n')]}"
        flagged = f"{totals[(set_name, False, 'flagged')]}/{totals[(set_name, False, 'n')]}"
        print(f"{set_name:<28}{caught:>16}{flagged:>16}")
    print(f"\n{'attacks by kind':<44}{'caught':>12}")
    for set_name, kind in sorted({(s, k) for s, k, _ in kinds}):
        hit, n = kinds[(set_name, kind, True)], kinds[(set_name, kind, True)]
        n += kinds[(set_name, kind, False)]
        print(f"{set_name + ' ' + kind:<44}{f'{hit}/{n}':>12}")
    print(f"\n{'rule (in flagged texts)':<28}{'attacks':>10}{'benign':>10}")
    zh_rules = sorted(
        {r for r, _ in fired},
        key=lambda r: (r.split("#")[0], int(r.split("#")[1]) if "#" in r else 0),
    )
    for reason in zh_rules:
        print(f"{reason:<28}{fired[(reason, True)]:>10}{fired[(reason, False)]:>10}")


if __name__ == "__main__":
    main()
