"""The gateway's own chain, timed in process: CPU per chat completion without server or socket.

`bench/run.py` and `bench/ab.py` time the whole process: the HTTP server, the
upstream client's sockets and the audit writer thread are in their figure.
This script hands ASGI requests straight to the built application (every
layer on, the tenant `bench` with finite limits, default guards, Cedar, the
durable audit entry before forwarding), with the upstream answered in
process (`tests.support.inprocess`), so what it measures is the chain:
CPU per request of the event loop's thread, and of the whole process (the
audit writer included).  The tenant is provisioned the way `run.py` does it,
through a gateway started for the purpose and stopped before measuring.

    python bench/chain_bench.py [--requests 2000] [--rounds 5] [--profile] [--no-audit-wait]
    python bench/chain_bench.py --a ../other-checkout [--b .] [--pairs 4]

`--profile` prints the functions with the most CPU of the event loop's thread
(cProfile timed by thread CPU time, so waits for the audit writer do not
count; the profiler's own cost inflates every figure about threefold).
`--no-audit-wait` is a diagnostic, never a way to run the gateway: every event is
still written, but no call waits for its commit (`AuditLog.durable` returns at
once), which shows what the wait for durability costs at c=1.
`--a/--b` runs each checkout's interpreter on this script in turn, A B B A …,
and prints the paired ratio B/A of CPU per request.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
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

from tests.support.inprocess import asgi_request, in_process_upstream  # noqa: E402

import harness  # noqa: E402
import loadgen  # noqa: E402
from bulkhead.app import build  # noqa: E402
from bulkhead.settings import load  # noqa: E402

CHAT_PATH = "/v1/chat/completions"


def provision(tmp: Path) -> tuple[Path, str]:
    """A data dir with run.py's tenant (finite limits) and its key, set up over HTTP."""
    data = tmp / "data"
    admin = harness.init_store(data)
    port = harness.free_port()
    gateway = harness.start_gateway(data, port, tmp / "gateway.log")
    try:
        harness.wait_until(f"http://{harness.HOST}:{port}/healthz", gateway, timeout_s=60)
        # The upstream port is never dialled: the client is answered in process.
        key = harness.provision(data, f"http://{harness.HOST}:{port}", admin, 9, True)
    finally:
        harness.stop(gateway)
    return data, key


async def _no_wait(ticket: int) -> None:
    return None


def measure(
    requests: int, rounds: int, profile: bool, no_wait: bool = False
) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="bulkhead-chain-") as tmp:
        data, key = provision(Path(tmp))
        env = {"BULKHEAD_START_WORKERS": "0"}
        app = build(load(data_dir=data, port=8080, metrics_port=0, env=env))
        in_process_upstream(app.upstreams)
        if no_wait:  # the diagnostic only: what waiting for durability costs the chain
            app.audit.durable = _no_wait  # type: ignore[method-assign]
        loop = uvloop.new_event_loop()  # as uvicorn runs the gateway
        loop.run_until_complete(app.startup())
        body = loadgen.chat_body("fake").encode()
        headers = [(b"authorization", f"Bearer {key}".encode())]
        headers.append((b"content-type", b"application/json"))

        async def calls(n: int) -> None:
            for _ in range(n):
                answer = await asgi_request(app, "POST", CHAT_PATH, headers=headers, body=body)
                if answer.status != 200:
                    raise RuntimeError(f"{answer.status}: {answer.raw[:300]!r}")

        loop.run_until_complete(calls(300))  # warm-up
        found: dict[str, list[float]] = {"thread_us": [], "process_us": []}
        if profile:
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            loop.run_until_complete(calls(requests))
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(r"bulkhead/", 45)
            stats.sort_stats("tottime").print_stats(25)
        for _ in range(rounds):
            process, thread = time.process_time(), time.thread_time()
            loop.run_until_complete(calls(requests))
            found["thread_us"].append(1e6 * (time.thread_time() - thread) / requests)
            found["process_us"].append(1e6 * (time.process_time() - process) / requests)
        loop.run_until_complete(app.shutdown())
        loop.close()
    return found


def paired(a: Path, b: Path, pairs: int, requests: int) -> None:
    """A B B A …: each side in its own interpreter (its own code), the ratio of medians.

    Both figures are given: the event loop's thread, and the whole process
    (the audit writer's commit included)."""
    runs: dict[str, dict[str, list[float]]] = {
        side: {"thread_us": [], "process_us": []} for side in "ab"
    }
    order = [side for i in range(pairs) for side in (("a", "b") if i % 2 == 0 else ("b", "a"))]
    for side in order:
        checkout = a if side == "a" else b
        cmd = [str(checkout / ".venv" / "bin" / "python"), __file__, "--json"]
        cmd += ["--requests", str(requests), "--rounds", "3"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=checkout)
        found = json.loads(done.stdout.splitlines()[-1])
        for name, mine in runs[side].items():
            mine.append(median(found[name]))
        loop_us, process_us = runs[side]["thread_us"][-1], runs[side]["process_us"][-1]
        print(f"  {side}: {loop_us:.1f} us event loop, {process_us:.1f} us process", flush=True)
    for name, label in (("thread_us", "event loop"), ("process_us", "process")):
        got_a, got_b = runs["a"][name], runs["b"][name]
        ratios = [b_ / a_ for a_, b_ in zip(got_a, got_b, strict=True)]
        print(
            f"{label} CPU per request: A {median(got_a):.1f} us, B {median(got_b):.1f} us,"
            f" B/A {median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--no-audit-wait",
        action="store_true",
        help="diagnostic: events are still written, but no call waits for its commit",
    )
    parser.add_argument("--json", action="store_true", help="one line of JSON (for --a/--b)")
    parser.add_argument("--a", type=Path, help="a checkout to compare with --b")
    parser.add_argument("--b", type=Path, default=ROOT)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args()
    if args.a is not None:
        paired(args.a.resolve(), args.b.resolve(), args.pairs, args.requests)
        return 0
    found: dict[str, Any] = measure(args.requests, args.rounds, args.profile, args.no_audit_wait)
    if args.json:
        print(json.dumps(found))
        return 0
    for name, values in found.items():
        print(f"{name}: median {median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
