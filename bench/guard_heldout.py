"""The guards on the held-out set nobody tuned on (`tests/vectors/guard/heldout`).

    .venv/bin/python bench/guard_heldout.py [--json]

Written by an independent author without sight of the training data or the
rules (its SOURCES.md), for reporting only: nothing here may be used to tune
a rule, a threshold or a model.  Each case goes through `Guard.scan_request`
as one user message, the way a gateway call does, for a tenant with PII and
secrets set to `redact`, injection `flag` (the verdict's flag is what `block`
refuses on) and the case's `phone_regions`, once with the rules alone and
once with the learned stage on (`injection_learned`).

Prints injection recall per language and kind, the false-positive rate on the
hard benign prompts, PII recall by value (a value is caught when it no longer
occurs verbatim in the body the upstream would get) per type and language, and
the share of look-alike negatives left intact.  Targets (issue 19): injection
recall >= 0.90 per language at <= 2 % false positives; PII recall >= 0.98;
negatives intact >= 0.95.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bulkhead.guard import Action, Guard, GuardConfig, InjectionMode

HELDOUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "guard" / "heldout"
DEFAULT_REGIONS = ("CN", "US", "GB")


def load(name: str) -> list[dict[str, Any]]:
    with (HELDOUT / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def guard(regions: tuple[str, ...], learned: bool) -> Guard:
    return Guard(
        GuardConfig(
            pii=Action.REDACT,
            secrets=Action.REDACT,
            injection=InjectionMode.FLAG,
            injection_learned=learned,
            phone_regions=regions,
        )
    )


def outgoing(g: Guard, text: str) -> tuple[str, bool]:
    """The text the upstream would get, and whether the injection stage flagged it."""
    verdict = g.scan_request({"messages": [{"role": "user", "content": text}]})
    return str(verdict.body["messages"][0]["content"]), verdict.injection_flagged


def injection(cases: list[dict[str, Any]], learned: bool) -> dict[str, Any]:
    g = guard(DEFAULT_REGIONS, learned)
    hits: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for case in cases:
        _, flagged = outgoing(g, case["text"])
        for key in (
            (case["lang"], case["kind"]),
            (case["lang"], "*inj" if case["injection"] else "*benign"),
        ):
            hits[key][0] += flagged
            hits[key][1] += 1
    return {
        f"{lang}/{kind}": {"flagged": n, "of": t} for (lang, kind), (n, t) in sorted(hits.items())
    }


def pii(cases: list[dict[str, Any]]) -> dict[str, Any]:
    guards: dict[tuple[str, ...], Guard] = {}
    caught: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    intact, negatives, missed = 0, 0, []
    for case in cases:
        regions = tuple(case.get("regions") or DEFAULT_REGIONS)
        g = guards.setdefault(regions, guard(regions, False))
        out, _ = outgoing(g, case["text"])
        if not case["expect"]:
            negatives += 1
            intact += out == case["text"]
            if out != case["text"]:
                missed.append(f"{case['id']} (look-alike changed)")
            continue
        for value in case["expect"]:
            ok = value["value"] not in out
            for key in (f"{case['lang']}/{value['type']}", f"{case['lang']}/*", "*"):
                caught[key][0] += ok
                caught[key][1] += 1
            if not ok:
                missed.append(f"{case['id']} {value['type']} ({case['kind']})")
    return {
        "recall": {k: {"caught": c, "of": t} for k, (c, t) in sorted(caught.items())},
        "negatives_intact": {"intact": intact, "of": negatives},
        "missed": missed,
    }


def show(report: dict[str, Any]) -> None:
    print("injection: flagged / cases (rules alone | rules + learned)")
    rules, both = report["injection"]["rules"], report["injection"]["both"]
    for key in rules:
        cells = [
            f"{x['flagged']:3}/{x['of']:<3} {x['flagged'] / x['of']:6.1%}"
            for x in (rules[key], both[key])
        ]
        print(f"  {key:28} {cells[0]} | {cells[1]}")
    print("PII recall by value (redacted / expected)")
    for key, v in report["pii"]["recall"].items():
        print(f"  {key:28} {v['caught']:3}/{v['of']:<3} {v['caught'] / v['of']:6.1%}")
    n = report["pii"]["negatives_intact"]
    print(f"look-alike negatives intact: {n['intact']}/{n['of']} {n['intact'] / n['of']:.1%}")
    print("missed:", ", ".join(report["pii"]["missed"]) or "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    cases = load("injection.jsonl")
    report = {
        "injection": {"rules": injection(cases, False), "both": injection(cases, True)},
        "pii": pii(load("pii.jsonl")),
    }
    print(json.dumps(report, indent=1)) if args.json else show(report)


if __name__ == "__main__":
    main()
