"""Shared capacity across replicas (`limits.redis_share`): cost, weighted shares, a victim.

1. Cost: one acquire + release of a free slot, in one process (`FairQueues`)
   and through Redis (`RedisCapacity`: two EVALSHAs, the release in the
   background).
2. Weighted shares: three replicas (three `RedisCapacity` on one Redis, each
   with its own connection and pump) on a deployment of 8 slots; tenants of
   weight 1 and 3 flood through different replicas (24 callers each, calls of
   50 ms); the mean slots each holds, sampled.
3. Victim: a tenant with 2 callers on replica 3, alone and then with a
   neighbour flooding through replica 1 at 10x (20 callers); p99 of its calls
   (acquire + 50 ms), median of 5 rounds.

The replicas share one event loop here, which isolates the admission rule
from the gateway's own work (tests/integration/test_capacity_replicas.py runs
the same through three gateways).  Usage: python bench/shared_capacity_bench.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.redis_server import redis_server

from bulkhead.limits.fairshare import FairQueues, SharedCapacity
from bulkhead.limits.redis_share import RedisCapacity, keys

CALL_S = 0.05


async def cost(capacity: SharedCapacity, n: int = 2000) -> tuple[float, float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        slot = await capacity.acquire("cost", {}, "t")
        slot.release()
        times.append(time.perf_counter() - start)
        await asyncio.sleep(0)
    times.sort()
    return times[n // 2] * 1e6, times[n * 99 // 100] * 1e6


async def caller(
    capacity: RedisCapacity, dep: str, tenant: str, w: int, until: float
) -> list[float]:
    latencies = []
    while time.monotonic() < until:
        start = time.monotonic()
        slot = await capacity.acquire(dep, {}, tenant, w)
        await asyncio.sleep(CALL_S)
        slot.release()
        latencies.append(time.monotonic() - start)
    return latencies


async def shares(url: str) -> dict[str, float]:
    reps = [RedisCapacity(url, default_capacity=8, max_wait_s=30) for _ in range(3)]
    until = time.monotonic() + 4.0
    load = [caller(reps[0], "shares", "light", 1, until) for _ in range(24)]
    load += [caller(reps[1], "shares", "heavy", 3, until) for _ in range(24)]
    tasks = [asyncio.create_task(c) for c in load]
    await asyncio.sleep(1.0)
    client = redis.Redis.from_url(url)
    totals: dict[str, float] = {}
    n = 0
    while time.monotonic() < until - 0.2:
        for tenant, held in client.hgetall(keys("shares")[2]).items():
            totals[tenant.decode()] = totals.get(tenant.decode(), 0) + int(held)
        n += 1
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    return {t: v / n for t, v in totals.items()}


async def victim(url: str, round_: int) -> tuple[float, float]:
    reps = [RedisCapacity(url, default_capacity=8, max_wait_s=30) for _ in range(3)]
    dep = f"victim{round_}"
    until = time.monotonic() + 1.5
    solo = await asyncio.gather(*(caller(reps[2], dep, "victim", 1, until) for _ in range(2)))
    until = time.monotonic() + 1.8
    flood = [asyncio.create_task(caller(reps[0], dep, "flood", 1, until)) for _ in range(20)]
    await asyncio.sleep(0.3)
    busy = await asyncio.gather(*(caller(reps[2], dep, "victim", 1, until) for _ in range(2)))
    await asyncio.gather(*flood)
    return p99([x for c in solo for x in c]), p99([x for c in busy for x in c])


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


async def main(url: str) -> None:
    local = await cost(FairQueues(default_capacity=8, max_wait_s=1))
    shared = await cost(RedisCapacity(url, default_capacity=8, max_wait_s=1))
    print(f"acquire+release, in process: median {local[0]:.0f} us, p99 {local[1]:.0f} us")
    print(f"acquire+release, Redis:      median {shared[0]:.0f} us, p99 {shared[1]:.0f} us")
    held = await shares(url)
    light = held.get("light", 0) / (held.get("light", 0) + held.get("heavy", 0))
    print(f"weights 1:3, mean slots held {held}; light's share {light:.3f} (target 0.250)")
    rounds = [await victim(url, r) for r in range(5)]
    ratios = [busy / solo for solo, busy in rounds]
    print(
        "victim p99 solo / with a 10x flood (ms):",
        [(round(a * 1e3), round(b * 1e3)) for a, b in rounds],
    )
    print(f"victim p99 ratio, median of 5: {statistics.median(ratios):.3f} (target <= 1.25)")


if __name__ == "__main__":
    with redis_server() as server:
        asyncio.run(main(server.url))
