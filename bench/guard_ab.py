"""Two checkouts' guard rules side by side: the paired figures of docs/benchmarks.md, issue 19.

    .venv/bin/python bench/guard_ab.py --a /tmp/base [--b .] [--pairs 5] [--seconds 1.5]

`bench/guard_bench.py` times one checkout; two of its runs minutes apart mix
a change with this shared machine's drift.  This script alternates processes
(A B B A A B ...), each importing `bulkhead` from its checkout's `src/`
(PYTHONPATH, ahead of the installed one), each timing `Guard.scan_request`
on guard_bench's three 4,096-character prompts with every entity redacted
and with the default settings: process CPU time per call, the median of
five rounds, divided by the prompt's UTF-8 KiB.  It prints, per prompt, the
median over the pairs for A and B and how many pairs B was faster in.  A
checkout is a directory with `src/bulkhead` (`git archive <commit> src |
tar -x -C /tmp/base` makes one without touching a work tree).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent


def measure(seconds: float) -> dict[str, float]:
    """us per KiB for each (config, prompt), timed in this process."""
    from bulkhead.guard import Action, Guard, GuardConfig
    from guard_bench import EN_PROMPT, WITH_ENTITIES, ZH_PROMPT, per_call_us

    out: dict[str, float] = {}
    for config_name, config in (
        ("redact", GuardConfig(pii=Action.REDACT)),
        ("default", GuardConfig()),
    ):
        guard = Guard(config)
        for name, text in (
            ("en", EN_PROMPT),
            ("zh", ZH_PROMPT),
            ("en+4", EN_PROMPT + WITH_ENTITIES),
        ):
            prompt = (text * (4096 // len(text) + 1))[:4096]
            body = {"messages": [{"role": "user", "content": prompt}]}
            us = per_call_us(lambda body=body, guard=guard: guard.scan_request(body), seconds)
            out[f"{config_name} {name}"] = us / (len(prompt.encode()) / 1024)
    return out


def run_side(checkout: Path, seconds: float) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--measure",
        "--seconds",
        str(seconds),
    ]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, help="the baseline checkout")
    parser.add_argument("--b", type=Path, default=HERE.parent, help="the changed checkout")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5, help="per figure, in each process")
    parser.add_argument("--measure", action="store_true", help="(internal) time this process")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.seconds)))
        return
    if args.a is None:
        parser.error("--a is required")
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for pair in range(args.pairs):
        order = (("A", args.a), ("B", args.b)) if pair % 2 == 0 else (("B", args.b), ("A", args.a))
        for side, checkout in order:
            runs[side].append(run_side(checkout.resolve(), args.seconds))
    print(f"{'figure (us per KiB)':<16}{'A':>8}{'B':>8}{'B/A':>8}  B faster in")
    for key in runs["A"][0]:
        a = [r[key] for r in runs["A"]]
        b = [r[key] for r in runs["B"]]
        wins = sum(y < x for x, y in zip(a, b, strict=True))
        ratio = median(b) / median(a)
        print(f"{key:<16}{median(a):>8.0f}{median(b):>8.0f}{ratio:>8.2f}  {wins}/{args.pairs}")


if __name__ == "__main__":
    main()
