"""Load generators and probes: wrk runs, a streaming client, and /proc readings."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import TypeVar

import aiohttp

from harness import LOAD_CPU, STREAM_CHUNKS

POST_LUA = Path(__file__).with_name("post.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_DONE = re.compile(r"^BENCH requests=(\d+) errors=(\d+)$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)$", re.M)


def chat_body(model: str, stream: bool = False) -> str:
    messages = '[{"role":"user","content":"hello"}]'
    # A stream is 20 events of the fake upstream: it asks for room for them (the gateway cuts
    # a stream once it passes the completion tokens it reserved).
    extra, length = (',"stream":true', 32) if stream else ("", 8)
    return f'{{"model":"{model}","messages":{messages},"max_tokens":{length}{extra}}}'


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float


def _percentile_ms(output: str, pct: int) -> float:
    found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    if found is None:
        raise ValueError(f"no {pct}% line in wrk output:\n{output}")
    return float(found.group(1)) * _UNIT_MS[found.group(2)]


def parse_wrk(output: str) -> WrkResult:
    done, rps = _DONE.search(output), _RPS.search(output)
    if done is None or rps is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    if int(done.group(2)):
        raise RuntimeError(f"wrk saw {done.group(2)} failed requests:\n{output}")
    return WrkResult(
        requests=int(done.group(1)),
        rps=float(rps.group(1)),
        p50_ms=_percentile_ms(output, 50),
        p99_ms=_percentile_ms(output, 99),
    )


def wrk(url: str, body: str, key: str, connections: int, seconds: int) -> WrkResult:
    """One bounded wrk run (1 thread, pinned to the load CPU) of POST `body` to `url`."""
    cmd = ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    cmd += ["--timeout", "5s", "--latency", "-s", str(POST_LUA), url]
    env = {**os.environ, "BENCH_BODY": body, "BENCH_KEY": key}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def cpu_ms(pid: int) -> float:
    """User + system CPU time the process (all its threads) has used so far, in ms."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state): utime is field 14
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True)
class StreamResult:
    streams: int
    ttfb_p50_ms: float
    total_p50_ms: float


async def _one_stream(session: aiohttp.ClientSession, url: str, body: str) -> tuple[float, float]:
    """Return (seconds to the first `data:` line, seconds to the end) of one stream."""
    start = time.perf_counter()
    first: float | None = None
    chunks, done = 0, False
    async with session.post(url, data=body) as response:
        if response.status != 200:
            raise RuntimeError(f"stream answered {response.status}: {await response.text()}")
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            first = first if first is not None else time.perf_counter() - start
            done = line.strip() == b"data: [DONE]"
            chunks += not done
    # The output guard may join events it held back, so a gateway's stream can have fewer.
    if first is None or not 0 < chunks <= STREAM_CHUNKS or not done:
        raise RuntimeError(f"stream from {url}: {chunks} chunks (want {STREAM_CHUNKS}), {done=}")
    return first, time.perf_counter() - start


async def _sequential_streams(url: str, body: str, key: str, count: int) -> StreamResult:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as s:
        samples = [await _one_stream(s, url, body) for _ in range(count)]
    return StreamResult(
        streams=count,
        ttfb_p50_ms=median(first for first, _ in samples) * 1e3,
        total_p50_ms=median(total for _, total in samples) * 1e3,
    )


def streams(url: str, body: str, key: str, count: int, limit_s: float = 120) -> StreamResult:
    """`count` sequential streaming requests over one keep-alive connection, time-bounded."""
    return asyncio.run(asyncio.wait_for(_sequential_streams(url, body, key, count), limit_s))


@dataclass(frozen=True)
class Snapshot:
    at: float
    procs: dict[int, float]  # pid -> CPU ms so far
    own: float  # CPU ms of this script and its reaped children (wrk)
    busy: float  # CPU ms all CPUs spent on tasks (user, nice, system) or lost to steal


@dataclass(frozen=True)
class Usage:
    cpu_ms: dict[int, float]  # pid -> CPU ms used in the interval
    foreign_pct: float  # CPU used by everything but the bench, in % of one core


def _busy_ms() -> float:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()  # the "cpu" total line
    user, nice, system, steal = (int(fields[i]) for i in (1, 2, 3, 8))
    return (user + nice + system + steal) * 1000 / CLK_TCK


def snapshot(pids: tuple[int, ...]) -> Snapshot:
    t = os.times()
    own = (t.user + t.system + t.children_user + t.children_system) * 1000
    return Snapshot(time.perf_counter(), {p: cpu_ms(p) for p in pids}, own, _busy_ms())


def usage(before: Snapshot, after: Snapshot) -> Usage:
    """CPU of each watched process, and what other processes (or the hypervisor) took."""
    procs = {pid: after.procs[pid] - ms for pid, ms in before.procs.items()}
    ours = sum(procs.values()) + after.own - before.own
    foreign = max(0.0, after.busy - before.busy - ours)
    return Usage(procs, 100 * foreign / ((after.at - before.at) * 1000))


QUIET_PCT = 10.0  # foreign CPU (% of one core) above which a run counts as disturbed
MAX_TRIES = 3


def wait_quiet(pids: tuple[int, ...], max_wait_s: float = 20.0, window_s: float = 0.5) -> bool:
    """Wait (bounded) until other processes leave the machine idle; False if they never did."""
    deadline = time.perf_counter() + max_wait_s
    while time.perf_counter() < deadline:
        before = snapshot(pids)
        time.sleep(window_s)
        if usage(before, snapshot(pids)).foreign_pct < QUIET_PCT:
            return True
    return False


def measured(pids: tuple[int, ...], run: Callable[[], T]) -> tuple[T, Usage]:
    """Run `run` on a quiet machine; retry (up to MAX_TRIES) when other load disturbed it."""
    for attempt in range(1, MAX_TRIES + 1):
        if not wait_quiet(pids):
            print("  warning: the machine stayed busy; measuring anyway", file=sys.stderr)
        before = snapshot(pids)
        result = run()
        used = usage(before, snapshot(pids))
        if used.foreign_pct <= QUIET_PCT or attempt == MAX_TRIES:
            return result, used
        print(
            f"  disturbed ({used.foreign_pct:.0f}% of a core used by other processes), "
            "running again",
            file=sys.stderr,
        )
    raise AssertionError("unreachable")
