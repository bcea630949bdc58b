"""A fresh gateway's footprint: start-up to the first good completion, idle CPU and idle RSS.

Used by bench/run.py; runnable alone for a quick look at one checkout:
`python bench/footprint.py [--starts 3] [--idle 5]` (it initialises and provisions its own
data dir, a tenant with finite limits, so admission counts tokens with the o200k tokenizer).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import harness
import loadgen
from harness import HOST, Service

CHAT_PATH = "/v1/chat/completions"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Footprint:
    healthz_s: float  # spawn to the first 200 from /healthz
    completion_s: float  # spawn to the first 200 from a chat completion (prompt counted)
    idle_cpu_pct: float  # % of one core over the idle window after that completion
    idle_rss_mb: float  # RSS at the end of the idle window (the tokenizer loaded)
    startup_cpu_s: float  # CPU the gateway used up to its first completion (noise-robust)


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


def measure(data_dir: Path, key: str, log: Path, idle_s: float) -> Footprint:
    """Start a gateway on an initialised, provisioned `data_dir`; measure it; stop it."""
    port = harness.free_port()
    base = f"http://{HOST}:{port}"
    began = time.perf_counter()
    service = harness.start_gateway(data_dir, port, log)
    try:
        harness.wait_until(base + "/healthz", service, timeout_s=60)
        healthz = time.perf_counter() - began
        wait_completion(base + CHAT_PATH, key, service)
        completion = time.perf_counter() - began
        cpu_before, at = loadgen.cpu_ms(service.pid), time.perf_counter()
        startup_cpu = cpu_before / 1000
        time.sleep(idle_s)
        cpu = loadgen.cpu_ms(service.pid) - cpu_before
        pct = 100 * cpu / ((time.perf_counter() - at) * 1000)
        return Footprint(healthz, completion, pct, loadgen.rss_mb(service.pid), startup_cpu)
    finally:
        harness.stop(service)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="idle window in seconds")
    args = parser.parse_args()
    harness.pin_self()
    with (
        tempfile.TemporaryDirectory(prefix="bulkhead-footprint-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        data_dir, key = prepared(stack, Path(tmp))
        for n in range(args.starts):
            f = measure(data_dir, key, Path(tmp) / f"start-{n}.log", args.idle)
            print(
                f"start {n + 1}: /healthz {f.healthz_s:.3f} s, first completion "
                f"{f.completion_s:.3f} s ({f.startup_cpu_s:.3f} s of CPU), "
                f"idle CPU {f.idle_cpu_pct:.2f} % of a core, idle RSS {f.idle_rss_mb:.1f} MB",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
