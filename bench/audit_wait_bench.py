"""The durable audit wait alone: CPU per model call of the hand-off to the writer and back.

A model call writes two entries: its `started` entry, waited for until it is
durable (`emit` then `durable`), and its closing entry, not waited for (it
rides with a later commit).  This script makes exactly those calls on uvloop
against an `AuditLog` on SQLite (WAL, `synchronous=FULL`, the usage hook as
the gateway has it), `--concurrency` of them at a time, with nothing else
on the loop, so its figure is the wait's own: CPU per call of the event
loop's thread and of the whole process (the writer's commit included), and
the wall time per call.

    python bench/audit_wait_bench.py [--calls 3000] [--rounds 3] [--concurrency 1]
    python bench/audit_wait_bench.py --a ../other-checkout [--b .] [--pairs 4] [--concurrency 16]

`--a/--b` runs each checkout's interpreter on this script in turn, A B B A …,
and prints the paired ratio B/A of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bulkhead.audit.events import AuditEvent  # noqa: E402
from bulkhead.audit.log import AuditLog  # noqa: E402
from bulkhead.domain import Tier  # noqa: E402
from bulkhead.store import Database, repo, upgrade, usage  # noqa: E402

FIGURES = ("thread_us", "process_us", "wall_us")


def _event(tenant: str, n: int, outcome: str) -> AuditEvent:
    return AuditEvent(
        action="v1:chat",
        outcome=outcome,
        status=0 if outcome == "started" else 200,
        request_id=f"req_{n:024x}",
        tenant_id=tenant,
        principal_id="prn_00000000000000000001",
        credential_id="abcdefghijkl",
        resource="fake",
        model="fake",
        prompt_tokens=12,
        completion_tokens=None if outcome == "started" else 34,
        client="127.0.0.1",
    )


def measure(calls: int, rounds: int, concurrency: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {name: [] for name in FIGURES}
    with tempfile.TemporaryDirectory(prefix="bulkhead-wait-") as tmp:
        db = Database(f"sqlite:///{tmp}/audit.db")
        upgrade(db)
        with db.platform_transaction() as session:
            tenant = repo.create_tenant(session, "bench", Tier.SHARED).id
        log = AuditLog(db, on_batch=usage.record)
        counter = iter(range(10**9))

        async def call() -> None:
            n = next(counter)
            await log.durable(log.emit(_event(tenant, n, "started")))
            log.emit(_event(tenant, n, "success"))

        async def client(n: int) -> None:
            for _ in range(n):
                await call()

        async def run(n: int) -> None:
            await asyncio.gather(*(client(n // concurrency) for _ in range(concurrency)))

        loop = uvloop.new_event_loop()
        loop.run_until_complete(run(300))  # warm-up
        for _ in range(rounds):
            process, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
            loop.run_until_complete(run(calls))
            done = calls // concurrency * concurrency
            found["thread_us"].append(1e6 * (time.thread_time() - thread) / done)
            found["process_us"].append(1e6 * (time.process_time() - process) / done)
            found["wall_us"].append(1e6 * (time.perf_counter() - wall) / done)
        log.flush()
        log.close()
        loop.close()
        db.dispose()
    return found


def paired(a: Path, b: Path, pairs: int, args: argparse.Namespace) -> None:
    """A B B A …: each side in its own interpreter (its own code), the ratio of medians."""
    runs: dict[str, dict[str, list[float]]] = {side: {n: [] for n in FIGURES} for side in "ab"}
    order = [side for i in range(pairs) for side in (("a", "b") if i % 2 == 0 else ("b", "a"))]
    for side in order:
        checkout = a if side == "a" else b
        cmd = [str(checkout / ".venv" / "bin" / "python"), __file__, "--json"]
        cmd += ["--calls", str(args.calls), "--rounds", str(args.rounds)]
        cmd += ["--concurrency", str(args.concurrency)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=checkout)
        found = json.loads(done.stdout.splitlines()[-1])
        for name, mine in runs[side].items():
            mine.append(median(found[name]))
        shown = ", ".join(f"{runs[side][n][-1]:.1f} {n}" for n in FIGURES)
        print(f"  {side}: {shown}", flush=True)
    for name in FIGURES:
        got_a, got_b = runs["a"][name], runs["b"][name]
        ratios = [b_ / a_ for a_, b_ in zip(got_a, got_b, strict=True)]
        print(
            f"{name} per call: A {median(got_a):.1f}, B {median(got_b):.1f},"
            f" B/A {median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one line of JSON (for --a/--b)")
    parser.add_argument("--a", type=Path, help="a checkout to compare with --b")
    parser.add_argument("--b", type=Path, default=ROOT)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    if args.a is not None:
        paired(args.a.resolve(), args.b.resolve(), args.pairs, args)
        return 0
    found: dict[str, Any] = measure(args.calls, args.rounds, args.concurrency)
    if args.json:
        print(json.dumps(found))
        return 0
    for name, values in found.items():
        print(f"{name}: median {median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
