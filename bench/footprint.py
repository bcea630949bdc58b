"""A fresh gateway's footprint: start-up to the first good completion, idle CPU and RSS.

Used by bench/run.py; runnable alone for a quick look at one checkout:
`python bench/footprint.py [--starts 3] [--idle 5]` (it initialises and provisions its own
data dir, a tenant with finite limits, so admission counts tokens with the o200k tokenizer).
`--env BULKHEAD_TOKEN_COUNTER=compact` sets a setting for every measured start.
`--against ../base` alternates fresh starts of this checkout's gateway (B) with another
checkout's (A: its `.venv/bin/bulkhead`, on the same data dir), A B B A A B ..., and prints
each side's medians: on a loaded machine only such pairs (and the CPU figures) compare.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path
from statistics import median

import harness
import loadgen
from harness import HOST, Service

CHAT_PATH = "/v1/chat/completions"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Footprint:
    healthz_s: float  # spawn to the first 200 from /healthz
    completion_s: float  # spawn to the first 200 from a chat completion (prompt counted)
    idle_cpu_pct: float  # % of one core over the idle window after it (`thread_cpu_ns`)
    idle_rss_mb: float  # RSS at the end of the idle window (the tokenizer loaded)
    startup_cpu_s: float  # CPU the gateway used up to its first completion (noise-robust)
    peak_rss_mb: float  # the most RSS it ever held (VmHWM), at the end of the idle window
    settled_cpu_s: float  # CPU used by the end of the idle window (work after the answer too)


def completed(url: str, key: str, body: bytes) -> bool:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    try:
        with _NO_PROXY.open(request, timeout=5) as response:
            response.read()
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_completion(url: str, key: str, service: Service, timeout_s: float = 60) -> None:
    body = loadgen.chat_body("fake").encode()
    start = time.perf_counter()
    while not completed(url, key, body):
        service.check_alive()
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"no good completion after {timeout_s}s:\n{service.log_tail()}")
        time.sleep(0.002)


def measure(
    data_dir: Path,
    key: str,
    log: Path,
    idle_s: float,
    bulkhead: Path = harness.BULKHEAD,
    env: dict[str, str] | None = None,
) -> Footprint:
    """Start a gateway on an initialised, provisioned `data_dir` (with `env` added to its
    environment); measure it; stop it."""
    port = harness.free_port()
    base = f"http://{HOST}:{port}"
    began = time.perf_counter()
    service = harness.start_gateway(data_dir, port, log, bulkhead, **(env or {}))
    try:
        harness.wait_until(base + "/healthz", service, timeout_s=60)
        healthz = time.perf_counter() - began
        wait_completion(base + CHAT_PATH, key, service)
        completion = time.perf_counter() - began
        ns_before, at = thread_cpu_ns(service.pid), time.perf_counter()
        startup_cpu = loadgen.cpu_ms(service.pid) / 1000
        time.sleep(idle_s)
        spent_ns = thread_cpu_ns(service.pid) - ns_before
        pct = 100 * spent_ns / ((time.perf_counter() - at) * 1e9)
        rss, peak = loadgen.rss_mb(service.pid), peak_rss_mb(service.pid)
        settled = loadgen.cpu_ms(service.pid) / 1000
        return Footprint(healthz, completion, pct, rss, startup_cpu, peak, settled)
    finally:
        harness.stop(service)


def thread_cpu_ns(pid: int) -> int:
    """CPU the process's live threads have run, in ns (each thread's schedstat).

    The idle window's figure: `/proc/PID/stat` counts 10 ms ticks, so a 10 s window
    reads 0.1 % per tick, and the kernel keeps user and system time each monotonic
    when it scales them to the run time, which can add a tick that never ran. A
    thread that ends inside the window is not counted; the gateway's live as long as
    it does (the loop, the audit writer and sequencer, the metrics listener, the
    executor's workers)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total


def peak_rss_mb(pid: int) -> float:
    """The most resident memory the process has held (VmHWM), in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM for pid {pid}")


def describe(f: Footprint) -> str:
    return (
        f"/healthz {f.healthz_s:.3f} s, first completion {f.completion_s:.3f} s "
        f"({f.startup_cpu_s:.3f} s of CPU), idle CPU {f.idle_cpu_pct:.2f} % of a core, "
        f"idle RSS {f.idle_rss_mb:.1f} MB, peak RSS {f.peak_rss_mb:.1f} MB, "
        f"{f.settled_cpu_s:.3f} s of CPU after the idle window"
    )


def paired(data_dir: Path, key: str, workdir: Path, args: argparse.Namespace) -> None:
    """Fresh starts of A (`--against`) and B (this checkout) in ABBA order; each side's medians."""
    sides = {"A": Path(args.against).resolve() / ".venv/bin/bulkhead", "B": harness.BULKHEAD}
    found: dict[str, list[Footprint]] = {"A": [], "B": []}
    for n in range(args.starts):
        for side in ("AB", "BA")[n % 2]:
            log = workdir / f"start-{side}{n}.log"
            f = measure(data_dir, key, log, args.idle, sides[side], _env(args))
            found[side].append(f)
            print(f"{side} start {n + 1}: {describe(f)}", flush=True)
    for side, runs in found.items():
        medians = {f.name: median(getattr(r, f.name) for r in runs) for f in fields(Footprint)}
        print(f"{side} median of {len(runs)} ({sides[side]}): {describe(Footprint(**medians))}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def prepared(stack: contextlib.ExitStack, workdir: Path) -> tuple[Path, str]:
    """A fake upstream (stopped by `stack`) and a data dir with tenant `bench`; its key."""
    up_port, gw_port = harness.free_port(), harness.free_port()
    upstream = harness.start_upstream(workdir, up_port)
    stack.callback(harness.stop, upstream)
    harness.wait_until(f"http://{HOST}:{up_port}{CHAT_PATH}", upstream, 30, accept_any=True)
    data_dir = workdir / "data"
    admin_key = harness.init_store(data_dir)
    gateway = harness.start_gateway(data_dir, gw_port, workdir / "provision.log")
    try:
        gw_url = f"http://{HOST}:{gw_port}"
        harness.wait_until(gw_url + "/healthz", gateway, timeout_s=60)
        key = harness.provision(data_dir, gw_url, admin_key, up_port)
    finally:
        harness.stop(gateway)
    return data_dir, key


def _env(args: argparse.Namespace) -> dict[str, str]:
    pairs = [item.partition("=") for item in args.env]
    return {name: value for name, _, value in pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="idle window in seconds")
    parser.add_argument("--against", help="another checkout (A): alternate starts with it")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="BULKHEAD_X=value",
        help="a setting for every measured start, both sides (the harness drops inherited ones)",
    )
    args = parser.parse_args()
    harness.pin_self()
    with (
        tempfile.TemporaryDirectory(prefix="bulkhead-footprint-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        data_dir, key = prepared(stack, Path(tmp))
        if args.against:
            paired(data_dir, key, Path(tmp), args)
            return 0
        for n in range(args.starts):
            f = measure(data_dir, key, Path(tmp) / f"start-{n}.log", args.idle, env=_env(args))
            print(f"start {n + 1}: {describe(f)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
