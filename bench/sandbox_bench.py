"""Worker sandbox cost: start-up time and model throughput, sandboxed vs not.

    python bench/sandbox_bench.py [--runs 5] [--requests 40] [--kinds demo-chat,minilm-embed]

For each kind, two supervisors run the same local model: one with the default sandbox
(what this host allows: own uid, rlimits, memory cgroup, network namespace, mount
namespace, Landlock, seccomp), one with BULKHEAD_WORKER_SANDBOX=off.

- Start-up: time from `sync` to the worker's READY, `--runs` times each, interleaved.
- Throughput: `--requests` sequential calls through the gateway's upstream client
  (demo-chat: 8-token completions; minilm-embed: one sentence), `--runs` rounds,
  interleaved so that drift on a shared machine hits both sides alike.

Medians are reported with the overhead in percent.  Target (issue 8): <= 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bulkhead.runtime import UpstreamClient, WorkerSpec, WorkerSupervisor  # noqa: E402
from bulkhead.runtime.sandbox import Sandbox, SandboxMode, SandboxPolicy  # noqa: E402

TARGET_PCT = 5.0
CALLS = {
    "demo-chat": (
        "/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8},
    ),
    "minilm-embed": ("/embeddings", {"model": "m", "input": "a cat sat on the mat"}),
}


def _supervisors() -> dict[str, WorkerSupervisor]:
    return {
        "sandboxed": WorkerSupervisor(sandbox=Sandbox(SandboxPolicy())),
        "unsandboxed": WorkerSupervisor(sandbox=Sandbox(SandboxPolicy(mode=SandboxMode.OFF))),
    }


async def _start_once(supervisor: WorkerSupervisor, spec: WorkerSpec) -> float:
    began = time.perf_counter()
    supervisor.sync([spec])
    if not await supervisor.wait_ready(300):
        raise SystemExit(f"worker did not start: {supervisor.status()}")
    elapsed = time.perf_counter() - began
    supervisor.sync([])
    await asyncio.sleep(0.5)  # let the stopped worker go before the next start
    return elapsed


async def startup(kind: str, runs: int) -> dict[str, list[float]]:
    supervisors = _supervisors()
    times: dict[str, list[float]] = {name: [] for name in supervisors}
    try:
        for run in range(runs):
            for name, supervisor in supervisors.items():
                spec = WorkerSpec(key=f"{kind}-{run}", kind=kind, model_name="m")
                times[name].append(await _start_once(supervisor, spec))
    finally:
        for supervisor in supervisors.values():
            await supervisor.close()
    return times


async def _timed(supervisor: WorkerSupervisor, client: UpstreamClient, kind: str) -> float:
    path, body = CALLS[kind]
    began = time.perf_counter()
    await client.call(supervisor.target(kind, 60), path, body)
    return time.perf_counter() - began


async def throughput(kind: str, runs: int, requests: int) -> dict[str, list[float]]:
    """Calls per second, sequential, from paired calls: sandboxed and not, in turn.

    Each run is `requests` pairs, the order swapped every pair, so drift on a
    shared machine hits both sides alike; a run's rate is 1 / its median call
    time (robust to the odd stall), and the figure is the median over runs.
    """
    supervisors = _supervisors()
    client = UpstreamClient()
    rates: dict[str, list[float]] = {name: [] for name in supervisors}
    names = list(supervisors)
    try:
        for supervisor in supervisors.values():
            supervisor.sync([WorkerSpec(key=kind, kind=kind, model_name="m")])
        for supervisor in supervisors.values():
            if not await supervisor.wait_ready(300):
                raise SystemExit(f"worker did not start: {supervisor.status()}")
        for supervisor in supervisors.values():  # warm-up
            for _ in range(5):
                await _timed(supervisor, client, kind)
        for _ in range(runs):
            times: dict[str, list[float]] = {name: [] for name in names}
            for i in range(requests):
                for name in names if i % 2 else reversed(names):
                    times[name].append(await _timed(supervisors[name], client, kind))
            for name in names:
                rates[name].append(1 / statistics.median(times[name]))
        features = supervisors["sandboxed"].status()[0]["sandbox"]
        print(f"  sandbox in force: {', '.join(features)}")  # type: ignore[arg-type]
    finally:
        await client.close()
        for supervisor in supervisors.values():
            await supervisor.close()
    return rates


def _overhead(sandboxed: float, unsandboxed: float, higher_is_better: bool) -> float:
    if higher_is_better:
        return (unsandboxed - sandboxed) / unsandboxed * 100
    return (sandboxed - unsandboxed) / unsandboxed * 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--kinds", default="demo-chat,minilm-embed")
    args = parser.parse_args()
    rows, worst = [], float("-inf")
    for kind in args.kinds.split(","):
        print(f"{kind}:")
        starts = asyncio.run(startup(kind, args.runs))
        rates = asyncio.run(throughput(kind, args.runs, args.requests))
        s_start, u_start = (statistics.median(starts[k]) for k in ("sandboxed", "unsandboxed"))
        s_rate, u_rate = (statistics.median(rates[k]) for k in ("sandboxed", "unsandboxed"))
        start_pct = _overhead(s_start, u_start, higher_is_better=False)
        rate_pct = _overhead(s_rate, u_rate, higher_is_better=True)
        worst = max(worst, rate_pct)
        rows.append(
            f"| {kind} | {u_start:.2f} s | {s_start:.2f} s | {start_pct:+.1f}% "
            f"| {u_rate:.1f}/s | {s_rate:.1f}/s | {rate_pct:+.1f}% |"
        )
    print(f"\nMedian of {args.runs} runs; throughput: {args.requests} paired calls per run.\n")
    print(
        "| kind | start-up, off | start-up, sandboxed | overhead | throughput, off "
        "| throughput, sandboxed | overhead |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    verdict = "met" if worst <= TARGET_PCT else "NOT met"
    print(f"\nThroughput overhead target <= {TARGET_PCT:.0f}%: {verdict} (worst {worst:+.1f}%).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
