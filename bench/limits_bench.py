"""Limits and fair sharing: admission overhead, noisy neighbour, exactness across replicas.

1. Admission overhead: `LimitAdmission.admit` + settle of a typical chat call
   (prompt counted with o200k, tenant and key scopes), with the in-process
   limiter and with Redis (and how many Redis commands one admission costs).
2. Noisy neighbour: a shared model on a fixed-capacity server (8 calls at a
   time, 50 ms each); a victim tenant at a steady 20 calls/s, alone and then
   with an aggressor at 10x its rate — through the fair queue, and through a
   plain FIFO (the deployment's capacity lifted, so the server's own queue
   decides) for comparison.  Target: victim p99 with the aggressor <= 1.25x
   its solo p99.
3. Exactness: two gateway processes on one Redis, hammered at once; admitted
   requests and tokens over the limit (<= 1.0), and the same without Redis
   (each replica keeps its own count).

The gateways run pinned to CPU 0, everything else to CPU 1, all on 127.0.0.1.
Usage: python bench/limits_bench.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp
import redis

import harness
from bulkhead.domain import (
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.limits import InMemoryLimiter, LimitAdmission, Limiter, O200kCounter
from bulkhead.limits.redis_limiter import RedisLimiter
from harness import GATEWAY_CPU, HOST, LOAD_CPU, Service

CAPACITY, SERVICE_MS, VICTIM_RPS = 8, 50.0, 20.0
PROMPT = (
    "You are a careful assistant. Summarise the following support ticket in two sentences "
    "and name the product it is about. Ticket: the export button on the billing page does "
    "nothing when I click it, and the browser console shows a 403 from /api/export."
)


def log(message: str) -> None:
    print(f"[limits] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# 1. Admission overhead -------------------------------------------------------------------


def context() -> TenantContext:
    quotas = {"requests_per_minute": 10**9, "tokens_per_minute": 10**12, "concurrency": None}
    tenant = Tenant("t1", "bench", Tier.SHARED, TenantStatus.ACTIVE, quotas=quotas)
    principal = Principal("p1", "t1", "svc", PrincipalKind.SERVICE, frozenset({Role.END_USER}))
    return TenantContext(tenant=tenant, principal=principal, role=Role.END_USER, credential_id="k1")


def admission_us(limiter: Limiter, rounds: int) -> float:
    counter = O200kCounter()
    counter.load()
    key_quotas = {"requests_per_minute": 10**9}  # one object, as the catalog's key holds
    admission = LimitAdmission(
        limiter, counter, key_quotas=lambda _: key_quotas, on_fail_open=lambda _: None
    )
    ctx = context()
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            ticket = admission.admit(ctx, "chat", dict(body))
            ticket.settle(60, 20)
        timings.append((time.perf_counter() - start) / rounds * 1e6)
    return median(timings)


def redis_commands_per_admission(url: str) -> float:
    client = redis.Redis.from_url(url)
    client.config_resetstat()
    limiter = RedisLimiter(client)
    counter = O200kCounter()
    admission = LimitAdmission(
        limiter, counter, key_quotas=lambda _: None, on_fail_open=lambda _: None
    )
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    for _ in range(100):
        admission.admit(context(), "chat", dict(body))  # not settled: admission alone
    stats = client.info("commandstats")
    # Commands a client sent (the script's own ZADDs and the like count apart).
    sent = ("cmdstat_evalsha", "cmdstat_eval")
    return sum(v["calls"] for k, v in stats.items() if k in sent) / 100


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("limits bench needs redis-server (make test installs it)")
    port = harness.free_port()
    cmd = ["taskset", "-c", str(LOAD_CPU), server, "--port", str(port), "--bind", HOST]
    cmd += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://{HOST}:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# Gateways and load -------------------------------------------------------------------------


def start_gateway(data_dir: Path, name: str, **env: str) -> tuple[Service, str]:
    port = harness.free_port()
    cmd = [str(harness.BULKHEAD), "--data-dir", str(data_dir), "serve", "--host", HOST]
    cmd += ["--port", str(port), "--metrics-port", str(harness.free_port())]
    service = harness.spawn(
        name,
        cmd,
        GATEWAY_CPU,
        data_dir.parent / f"{name}.log",
        harness.child_env(BULKHEAD_START_WORKERS="0", **env),
    )
    url = f"http://{HOST}:{port}"
    harness.wait_until(url + "/healthz", service, 30)
    return service, url


def admin(data_dir: Path, url: str, key: str, *args: str) -> str:
    return harness.cli(data_dir, "--server", url, "--key", key, *args)


def tenant_key(data_dir: Path, url: str, key: str, name: str, model: str) -> str:
    admin(data_dir, url, key, "tenant", "create", name)
    unlimited = ("--rpm", "none", "--tpm", "none", "--concurrency", "none")
    admin(data_dir, url, key, "tenant", "set-limits", name, *unlimited)
    admin(data_dir, url, key, "model", "grant", model, "--tenant", name)
    return str(
        json.loads(admin(data_dir, url, key, "key", "create", "--tenant", name, "--json"))["secret"]
    )


async def paced(
    session: aiohttp.ClientSession, url: str, key: str, model: str, rps: float, seconds: float
) -> tuple[list[float], dict[int, int]]:
    """Open-loop load: one call every 1/rps seconds whatever the latency; latency and statuses."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def one() -> None:
        start = time.perf_counter()
        async with session.post(url + "/v1/chat/completions", data=body, headers=headers) as r:
            await r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status == 200:
                latencies.append((time.perf_counter() - start) * 1000)

    tasks = []
    start = time.perf_counter()
    for i in range(int(rps * seconds)):
        delay = start + i / rps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies, statuses


async def contention(
    url: str, victim: str, aggressor: str | None, model: str, seconds: float
) -> tuple[list[float], dict[int, int]]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        runs = [paced(session, url, victim, model, VICTIM_RPS, seconds)]
        if aggressor is not None:
            runs.append(paced(session, url, aggressor, model, VICTIM_RPS * 10, seconds))
        results = await asyncio.gather(*runs)
    return results[0][0], (results[1][1] if aggressor is not None else {})


def noisy_neighbour(workdir: Path, seconds: float) -> dict[str, Any]:
    data = workdir / "nn" / "data"
    data.parent.mkdir(parents=True)
    key = harness.init_store(data)
    up_port = harness.free_port()
    upstream = harness.spawn(
        "capacity upstream",
        [sys.executable, str(Path(__file__).with_name("capacity_upstream.py")),
         "--port", str(up_port), "--capacity", str(CAPACITY), "--service-ms", str(SERVICE_MS)],
        LOAD_CPU,
        workdir / "nn" / "upstream.log",
        harness.child_env(),
    )  # fmt: skip
    gateway, url = start_gateway(data, "gateway-nn", BULKHEAD_QUEUE_WAIT_MS="2000")
    try:
        base = f"http://{HOST}:{up_port}/v1"
        for name, cap in (("fair", str(CAPACITY)), ("fifo", "100000")):
            admin(data, url, key, "model", "add", name, "--upstream", base, "--shared",
                  "--upstream-model", "cap", "--max-in-flight", cap)  # fmt: skip
        victim = tenant_key(data, url, key, "victim", "fair")
        aggressor = tenant_key(data, url, key, "aggressor", "fair")
        admin(data, url, key, "model", "grant", "fifo", "--tenant", "victim")
        admin(data, url, key, "model", "grant", "fifo", "--tenant", "aggressor")
        asyncio.run(contention(url, victim, None, "fair", 2))  # warm-up
        solo, _ = asyncio.run(contention(url, victim, None, "fair", seconds))
        fair, agg = asyncio.run(contention(url, victim, aggressor, "fair", seconds))
        fifo, agg_fifo = asyncio.run(contention(url, victim, aggressor, "fifo", seconds))
    finally:
        harness.stop(gateway)
        harness.stop(upstream)
    return {
        "solo_p50": pct(solo, 0.5),
        "solo_p99": pct(solo, 0.99),
        "fair_p50": pct(fair, 0.5),
        "fair_p99": pct(fair, 0.99),
        "fifo_p99": pct(fifo, 0.99) if fifo else float("nan"),
        "aggressor": agg,
        "aggressor_fifo": agg_fifo,
        "victim_ok": len(fair),
    }


# 3. Exactness across replicas --------------------------------------------------------------


async def hammer(urls: list[str], key: str, model: str, seconds: float) -> tuple[int, int, int]:
    body = json.dumps({"model": model, "prompt": "count me", "max_tokens": 100})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    admitted = tokens = denied = 0
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession, url: str) -> None:
        nonlocal admitted, tokens, denied
        while time.monotonic() < deadline:
            async with session.post(url + "/v1/completions", data=body, headers=headers) as r:
                payload = await r.read()
                if r.status == 200:
                    admitted += 1
                    tokens += json.loads(payload)["usage"]["total_tokens"]
                else:
                    denied += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, u) for u in urls for _ in range(8)))
    return admitted, tokens, denied


def replicas(workdir: Path, redis_url: str | None, seconds: float) -> dict[str, float]:
    label = "redis" if redis_url else "memory"
    data = workdir / f"rep-{label}" / "data"
    data.parent.mkdir(parents=True)
    key = harness.init_store(data)
    up_port = harness.free_port()
    upstream = harness.start_upstream(data.parent, up_port)
    env = {"BULKHEAD_REDIS_URL": redis_url} if redis_url else {}
    services = []
    try:
        urls = []
        for i in range(2):
            service, url = start_gateway(data, f"gateway-{label}-{i}", **env)
            services.append(service)
            urls.append(url)
        base = f"http://{HOST}:{up_port}/v1"
        admin(data, urls[0], key, "model", "add", "m", "--upstream", base, "--shared",
              "--upstream-model", "fake-1", "--endpoints", "completions")  # fmt: skip
        tenant = tenant_key(data, urls[0], key, "rep", "m")
        admin(data, urls[0], key, "tenant", "set-limits", "rep", "--rpm", "300", "--tpm", "1000000")
        time.sleep(2.5)  # the other replica picks the limits up on its catalog poll
        requests, _, _ = asyncio.run(hammer(urls, tenant, "m", seconds))
        tenant2 = tenant_key(data, urls[0], key, "rep-tpm", "m")
        admin(data, urls[0], key, "tenant", "set-limits", "rep-tpm", "--tpm", "20000")
        time.sleep(2.5)
        _, tokens, _ = asyncio.run(hammer(urls, tenant2, "m", seconds))
    finally:
        for service in services:
            harness.stop(service)
        harness.stop(upstream)
    return {"requests": requests / 300, "tokens": tokens / 20_000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    harness.pin_self()
    workdir = Path(tempfile.mkdtemp(prefix="bulkhead-limits-"))
    redis_proc, redis_url = start_redis(workdir)
    try:
        log("admission overhead")
        memory_us = admission_us(InMemoryLimiter(), args.rounds)
        redis_us = admission_us(RedisLimiter.from_url(redis_url), max(1000, args.rounds // 10))
        commands = redis_commands_per_admission(redis_url)
        log("noisy neighbour")
        nn = noisy_neighbour(workdir, args.seconds)
        log("replicas")
        shared = replicas(workdir, redis_url, 4.0)
        local = replicas(workdir, None, 4.0)
    finally:
        with contextlib.suppress(Exception):
            redis_proc.terminate()
            redis_proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
    report(memory_us, redis_us, commands, nn, shared, local, args.seconds)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def report(
    memory_us: float,
    redis_us: float,
    commands: float,
    nn: dict[str, Any],
    shared: dict[str, float],
    local: dict[str, float],
    seconds: float,
) -> None:
    ratio = nn["fair_p99"] / nn["solo_p99"]
    fifo = nn["fifo_p99"] / nn["solo_p99"]
    lines = [
        "",
        "Limits and fair sharing",
        f"  admission + settle, in-process limiter  {memory_us:8.1f} µs/call"
        f"  (target ≤ 50) {verdict(memory_us <= 50)}",
        f"  admission + settle, Redis limiter       {redis_us:8.1f} µs/call",
        f"  Redis round trips per admission         {commands:8.2f}"
        f"  (target 1) {verdict(commands <= 1.05)}",
        f"  noisy neighbour: capacity {CAPACITY} x {SERVICE_MS:.0f} ms,"
        f" victim {VICTIM_RPS:.0f}/s, aggressor {VICTIM_RPS * 10:.0f}/s, {seconds:.0f} s",
        f"    victim solo         p50 {nn['solo_p50']:7.1f} ms  p99 {nn['solo_p99']:7.1f} ms",
        f"    victim, fair queue  p50 {nn['fair_p50']:7.1f} ms  p99 {nn['fair_p99']:7.1f} ms"
        f"  {ratio:.2f}x solo (target ≤ 1.25) {verdict(ratio <= 1.25)}",
        f"    victim, FIFO        p99 {nn['fifo_p99']:7.1f} ms  {fifo:.2f}x solo (no fair queue)",
        f"    aggressor statuses: fair {nn['aggressor']}  FIFO {nn['aggressor_fifo']}",
        "  admitted / limit, 2 gateway replicas (rpm 300; tpm 20,000; 4 s of load)",
        f"    one Redis        requests {shared['requests']:.3f}  tokens {shared['tokens']:.3f}"
        "  (<= 1.000: exact)",
        f"    in-process only  requests {local['requests']:.3f}  tokens {local['tokens']:.3f}"
        "  (each replica counts alone)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
