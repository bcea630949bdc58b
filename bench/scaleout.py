"""Scale-out figures: throughput through nginx with 1, 2 and 3 replicas, and each fault's cost.

    python bench/scaleout.py [--seconds 5] [--connections 32] [--json out.json]

Starts the scale-out stack (`tests.support.scale`: nginx, 3 `bulkhead serve`
replicas, PostgreSQL 15, Redis, SoftHSM2, the fake upstream), then:

- wrk through nginx with 1, 2 and 3 replicas behind it (nginx reloaded with
  that many upstream servers): requests/s, p50, p99.  Every process (wrk,
  nginx, the replicas, PostgreSQL, Redis, the fake model) shares the
  machine's cores, so on a 2-core machine the figures say how the pieces
  share 2 cores, not how a replica scales on hardware of its own;
- propagation: a key revoked through replica 1, and how long until the other
  replicas refuse it (p50/p99 over the trials);
- faults under a closed-loop client through nginx - `kill -9` of one replica
  (and its restart), a rolling SIGTERM restart of all three, Redis restarted,
  the HSM's token gone and back: failed requests, and the time to recover.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from statistics import quantiles
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

from tests.support.scale.client import Loop, call, chat, multipart  # noqa: E402
from tests.support.scale.stack import CHAT, MODEL, SLOW_MODEL, Stack  # noqa: E402

from loadgen import parse_wrk  # noqa: E402

POST_LUA = ROOT / "bench" / "post.lua"


def wrk(url: str, key: str, body: dict[str, Any], connections: int, seconds: int) -> dict[str, Any]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    cmd += ["-s", str(POST_LUA), url]
    env = {**os.environ, "BENCH_BODY": json.dumps(body), "BENCH_KEY": key}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()}")
    result = parse_wrk(done.stdout)
    return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms}


def throughput(stack: Stack, seconds: int, connections: int) -> dict[str, Any]:
    assert stack.nginx is not None
    out = {}
    for n in (1, 2, 3):
        stack.nginx.balance([r.port for r in stack.replicas[:n]])
        wrk(stack.url + CHAT, stack.key, chat(MODEL), connections, 1)  # warm-up
        out[str(n)] = wrk(stack.url + CHAT, stack.key, chat(MODEL), connections, seconds)
        print(f"  {n} replica(s): {out[str(n)]}", flush=True)
    stack.nginx.balance([r.port for r in stack.replicas])
    return out


def _pcts(values: list[float]) -> dict[str, float]:
    cuts = quantiles(values, n=100, method="inclusive")
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000, "max_ms": max(values) * 1000}


def propagation(stack: Stack, trials: int) -> dict[str, Any]:
    """A key revoked through replica 1: seconds until replicas 2 and 3 both refuse it."""
    first, others = stack.replicas[0], stack.replicas[1:]
    waits = []
    for _ in range(trials):
        made = stack.must("POST", "/admin/v1/tenants/scale/keys", {}, via=first.url)
        stack.wait_everywhere(made["secret"], MODEL)
        stack.must("POST", f"/admin/v1/keys/{made['key']['id']}/revoke", via=first.url)
        start = time.monotonic()
        pending = list(others)
        while pending:
            if call("POST", pending[0].url + CHAT, made["secret"], chat(MODEL)).status == 401:
                pending.pop(0)
            elif time.monotonic() - start > 10:
                raise RuntimeError("a revoked key was still accepted after 10 s")
        waits.append(time.monotonic() - start)
    return {"trials": trials, **_pcts(waits)}


def _summary(loop: Loop) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for outcome in loop.outcomes:
        statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
    failed = sum(n for s, n in statuses.items() if s != "200")
    codes: dict[str, int] = {}
    for outcome in loop.outcomes:
        if outcome.status != 200:
            name = f"{outcome.status} {outcome.error}"
            codes[name] = codes.get(name, 0) + 1
    return {"requests": len(loop.outcomes), "failed": failed, "statuses": statuses, "why": codes}


def _until(check: Any, timeout_s: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(f"not recovered within {timeout_s}s")
        time.sleep(0.02)
    return time.monotonic() - start


def kill_9(stack: Stack) -> dict[str, Any]:
    victim = stack.replicas[1]
    with Loop(stack.url + CHAT, stack.key, chat(SLOW_MODEL), clients=8) as loop:
        time.sleep(2)
        victim.proc.kill9()
        time.sleep(1)
        restarted = time.monotonic()
        started_s = victim.start()

        def rejoined() -> bool:
            return any(
                o.upstream == victim.address and o.status == 200 and o.started > restarted
                for o in loop.snapshot()
            )

        back_s = _until(rejoined, 30)
        time.sleep(1)
    return {
        **_summary(loop),
        "clients": 8,
        "replica_start_s": started_s,
        "rejoined_through_nginx_s": back_s,
    }


def rolling_restart(stack: Stack) -> dict[str, Any]:
    rejoin = []
    started = time.monotonic()
    with Loop(stack.url + CHAT, stack.key, chat(SLOW_MODEL), clients=4) as loop:
        time.sleep(1)
        for replica in stack.replicas:
            replica.proc.signal(signal.SIGTERM)
            exited = replica.proc.wait(60)
            if exited is None:
                raise RuntimeError(f"replica {replica.index} ignored SIGTERM for 60 s")
            rejoin.append(replica.start())
            time.sleep(2.5)  # nginx's fail_timeout
    return {
        **_summary(loop),
        "clients": 4,
        "total_s": time.monotonic() - started,
        "replica_start_s": rejoin,
    }


def redis_restart(stack: Stack, down_s: float) -> dict[str, Any]:
    stack.tenant("bench-limited", unlimited=False)
    stack.set_quotas("bench-limited", {"requests_per_minute": 1_000_000})
    stack.must("POST", f"/admin/v1/models/{MODEL}/grants", {"tenant": "bench-limited"})
    key = stack.mint_key("bench-limited")
    stack.wait_everywhere(key, MODEL)
    with Loop(stack.url + CHAT, key, chat(MODEL), clients=4) as loop:
        time.sleep(1)
        stack.redis.stop()
        time.sleep(down_s)
        stack.redis.start()
        back = time.monotonic()
        recovered_s = _until(lambda: loop.first_success_after(back) is not None, 30)
        recovered = loop.first_success_after(back)
        time.sleep(1)
    return {
        **_summary(loop),
        "down_s": down_s,
        "recovered_after_redis_back_s": recovered,
        "observed_s": recovered_s,
    }


def hsm_lost(stack: Stack, down_s: float) -> dict[str, Any]:
    assert stack.hsm is not None
    outcomes: list[tuple[float, int]] = []
    why: dict[str, int] = {}
    stop = threading.Event()

    def uploads() -> None:
        while not stop.is_set():
            body, kind = multipart({"purpose": "assistants"}, "b.bin", b"b" * 1024)
            r = call(
                "POST", stack.url + "/v1/files", stack.key, raw=body, headers={"content-type": kind}
            )
            outcomes.append((time.monotonic(), r.status))
            if r.status != 200:
                why[f"{r.status} {r.code}"] = why.get(f"{r.status} {r.code}", 0) + 1

    threads = [threading.Thread(target=uploads) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1)
    stack.hsm.take_away()
    time.sleep(down_s)
    stack.hsm.bring_back()
    back = time.monotonic()
    recovered = _until(lambda: any(s == 200 and t > back for t, s in outcomes), 30)
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    statuses: dict[str, int] = {}
    for _, status in outcomes:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    failed = sum(n for s, n in statuses.items() if s != "200")
    return {
        "requests": len(outcomes),
        "failed": failed,
        "statuses": statuses,
        "why": why,
        "down_s": down_s,
        "recovered_after_token_back_s": recovered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()},
    }
    stack = Stack()
    try:
        started = time.monotonic()
        stack.start()
        results["stack_start_s"] = time.monotonic() - started
        print(f"stack up in {results['stack_start_s']:.1f}s", flush=True)
        results["throughput"] = throughput(stack, args.seconds, args.connections)
        for name, run in (
            ("propagation", lambda: propagation(stack, args.trials)),
            ("kill_9", lambda: kill_9(stack)),
            ("rolling_restart", lambda: rolling_restart(stack)),
            ("redis_restart", lambda: redis_restart(stack, 2.0)),
            ("hsm_lost", lambda: hsm_lost(stack, 2.0)),
        ):
            results[name] = run()
            print(f"  {name}: {results[name]}", flush=True)
    finally:
        errors = stack.root / "nginx" / "nginx-error.log"
        if errors.exists():  # why nginx answered what it did (502s: the replica's side)
            results["nginx_errors"] = errors.read_text(errors="replace").splitlines()[-30:]
        stack.stop()
        results["leftover_processes"] = stack.leftovers()
        stack.remove()
    results["machine"]["load_after"] = os.getloadavg()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
