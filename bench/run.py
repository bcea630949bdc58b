"""Bulkhead benchmark: the gateway on one core against the fake upstream it fronts.

Starts the fake upstream (bulkhead.testing.fake_upstream) and `bulkhead serve` in a
temporary data dir, the gateway pinned to CPU 0 and everything else to CPU 1, all
on 127.0.0.1.  The tenant has finite limits (admission reserves in them, so every
prompt is counted with the o200k tokenizer) and the default guards (output guard
on); `--limits lifted` measures a tenant without limits instead.  Measures
throughput and latency with wrk, streaming TTFB with an asyncio client, CPU per
request and per stream from /proc, and, on fresh starts (bench/footprint.py),
start-up to the first good completion, then idle CPU and idle RSS with the
tokenizer loaded; each figure is the median of several short runs.  Prints a
table with issue 21's targets and writes it to bench/results/latest.md.
Usage: python bench/run.py [--runs 3] [--seconds 3] ...  (about two minutes)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from statistics import median

import footprint
import harness
import loadgen
from harness import HOST, Service
from report import Figure, Samples, Target, markdown_table, raw_values, text_table

CONCURRENCY = (1, 16, 64)
RESULTS = Path(__file__).with_name("results") / "latest.md"
CHAT_PATH = "/v1/chat/completions"
TENANT = {True: "finite limits (every prompt counted with o200k)", False: "limits lifted"}
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Options:
    runs: int
    seconds: int
    warmup: int
    streams: int
    starts: int
    idle: float
    limited: bool
    out: Path


@dataclass
class Endpoint:
    """One side of the comparison: where to send load, and whose CPU it costs."""

    name: str
    url: str
    model: str
    key: str
    service: Service
    samples: Samples = field(default_factory=Samples)


def parse_args() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured runs per figure")
    parser.add_argument("--seconds", type=int, default=3, help="length of one wrk run")
    parser.add_argument("--warmup", type=int, default=1, help="wrk warm-up before each series")
    parser.add_argument("--streams", type=int, default=300, help="sequential streams per run")
    parser.add_argument("--starts", type=int, default=3, help="fresh starts (start-up, idle)")
    parser.add_argument("--idle", type=float, default=5.0, help="idle window after a start (s)")
    parser.add_argument(
        "--limits", choices=("finite", "lifted"), default="finite", help="the tenant's limits"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="Markdown report path")
    a = parser.parse_args()
    limited = a.limits == "finite"
    return Options(a.runs, a.seconds, a.warmup, a.streams, a.starts, a.idle, limited, a.out)


def ensure_tools() -> None:
    """Check the bulkhead executable and taskset; install wrk with apt-get if root."""
    if not harness.BULKHEAD.exists():
        sys.exit(f"no `bulkhead` next to {sys.executable}: install the package (make install)")
    if shutil.which("taskset") is None:
        sys.exit("taskset not found: install util-linux")
    if shutil.which("wrk") is not None:
        return
    if os.geteuid() != 0:
        sys.exit("wrk not found: install it (e.g. `sudo apt-get install -y wrk`) and retry")
    print("wrk not found: installing it with apt-get", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
            subprocess.run(cmd, check=True, env=env, timeout=600, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        sys.exit(f"could not install wrk with apt-get ({exc}): install it and retry")
    if shutil.which("wrk") is None:
        sys.exit("apt-get ran but wrk is still missing: install it and retry")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _on_signal(signum: int, _frame: object) -> None:
    """First Ctrl-C / SIGTERM / SIGHUP: stop measuring; ignore repeats so clean-up completes."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


# --- set-up -----------------------------------------------------------------------------------


def start_services(
    stack: contextlib.ExitStack, workdir: Path, limited: bool
) -> tuple[Endpoint, Endpoint]:
    """Start upstream and gateway (each stopped by `stack`); return (gateway, direct)."""
    up_port, gw_port = harness.free_port(), harness.free_port()
    upstream = harness.start_upstream(workdir, up_port)
    stack.callback(harness.stop, upstream)
    up_url = f"http://{HOST}:{up_port}"
    harness.wait_until(up_url + CHAT_PATH, upstream, timeout_s=30, accept_any=True)

    data_dir = workdir / "data"
    admin_key = harness.init_store(data_dir)
    gateway = harness.start_gateway(data_dir, gw_port, workdir / "gateway.log")
    stack.callback(harness.stop, gateway)
    gw_url = f"http://{HOST}:{gw_port}"
    harness.wait_until(gw_url + "/healthz", gateway, timeout_s=60)
    key = harness.provision(data_dir, gw_url, admin_key, up_port, limited)
    return (
        Endpoint("gateway", gw_url + CHAT_PATH, "fake", key, gateway),
        Endpoint("direct", up_url + CHAT_PATH, "fake-1", "", upstream),
    )


# --- measurements -----------------------------------------------------------------------------


def pids(ends: tuple[Endpoint, Endpoint]) -> tuple[int, ...]:
    return tuple(end.service.pid for end in ends)


def wrk_run(end: Endpoint, watch: tuple[int, ...], connections: int, seconds: int) -> None:
    """One measured wrk run: req/s, p50, p99 and CPU ms per request of `end`'s process."""
    body = loadgen.chat_body(end.model)
    result, used = loadgen.measured(
        watch, lambda: loadgen.wrk(end.url, body, end.key, connections, seconds)
    )
    cpu = used.cpu_ms[end.service.pid] / result.requests
    s, c = end.samples, connections
    s.add(f"rps_c{c}", result.rps)
    s.add(f"p50_c{c}", result.p50_ms)
    s.add(f"p99_c{c}", result.p99_ms)
    s.add(f"cpu_per_req_c{c}", cpu)
    s.add("foreign_pct", used.foreign_pct)
    log(
        f"  {end.name:7} c={c:<2} {result.rps:8.0f} req/s  p50 {result.p50_ms:7.3f} ms  "
        f"p99 {result.p99_ms:7.3f} ms  cpu {cpu:.3f} ms/req"
    )


def measure_requests(ends: tuple[Endpoint, Endpoint], opts: Options) -> None:
    """Per concurrency: warm both sides up, then alternate measured runs between them."""
    for connections in CONCURRENCY:
        log(f"non-streaming, c={connections}")
        for end in ends:
            loadgen.wrk(end.url, loadgen.chat_body(end.model), end.key, connections, opts.warmup)
        for _ in range(opts.runs):
            for end in ends:
                wrk_run(end, pids(ends), connections, opts.seconds)


def stream_run(end: Endpoint, watch: tuple[int, ...], count: int) -> None:
    """Sequential streams: TTFB and total p50, CPU ms per stream of `end`'s process."""
    body = loadgen.chat_body(end.model, stream=True)
    result, used = loadgen.measured(watch, lambda: loadgen.streams(end.url, body, end.key, count))
    cpu = used.cpu_ms[end.service.pid] / count
    end.samples.add("ttfb_p50", result.ttfb_p50_ms)
    end.samples.add("stream_p50", result.total_p50_ms)
    end.samples.add("cpu_per_stream", cpu)
    end.samples.add("foreign_pct", used.foreign_pct)
    log(
        f"  {end.name:7} ttfb p50 {result.ttfb_p50_ms:.3f} ms  "
        f"total p50 {result.total_p50_ms:.3f} ms  cpu {cpu:.3f} ms/stream"
    )


def measure_streams(ends: tuple[Endpoint, Endpoint], opts: Options) -> None:
    log(f"streaming, {opts.streams} sequential {harness.STREAM_CHUNKS}-chunk streams per run")
    for end in ends:
        warmup = max(10, opts.streams // 10)
        loadgen.streams(end.url, loadgen.chat_body(end.model, stream=True), end.key, warmup)
    for _ in range(opts.runs):
        for end in ends:
            stream_run(end, pids(ends), opts.streams)


def measure_startup(ends: tuple[Endpoint, Endpoint], workdir: Path, opts: Options) -> None:
    """Fresh starts on the (initialised, provisioned) data dir, the benched gateway stopped:
    start-up to /healthz and to the first good completion, then idle CPU and RSS."""
    log(f"start-up, {opts.starts} fresh starts, each idle {opts.idle:.0f} s after its first answer")
    gateway, direct = ends
    harness.stop(gateway.service)
    for n in range(opts.starts):
        start = partial(
            footprint.measure, workdir / "data", gateway.key, workdir / f"start-{n}.log", opts.idle
        )
        found, used = loadgen.measured((direct.service.pid,), start)
        samples = gateway.samples
        samples.add("startup", found.healthz_s)
        samples.add("startup_completion", found.completion_s)
        samples.add("startup_cpu", found.startup_cpu_s)
        samples.add("idle_cpu", found.idle_cpu_pct)
        samples.add("rss_idle", found.idle_rss_mb)
        samples.add("foreign_pct", used.foreign_pct)
        log(
            f"  start {n + 1}: /healthz {found.healthz_s:.3f} s, first completion "
            f"{found.completion_s:.3f} s, idle CPU {found.idle_cpu_pct:.2f} %, "
            f"idle RSS {found.idle_rss_mb:.1f} MB"
        )


def run_all(opts: Options, workdir: Path) -> tuple[Endpoint, Endpoint]:
    with contextlib.ExitStack() as stack:
        ends = start_services(stack, workdir, opts.limited)
        gateway = ends[0]
        loadgen.wait_quiet(pids(ends))
        measure_requests(ends, opts)
        gateway.samples.add("rss_loaded", loadgen.rss_mb(gateway.service.pid))
        measure_streams(ends, opts)
        measure_startup(ends, workdir, opts)
    return ends


# --- report -----------------------------------------------------------------------------------


def figures(gw: Samples, direct: Samples) -> list[Figure]:
    """The table: medians of every figure, with issue 21's targets."""

    def pair(key: str, name: str, unit: str, target: Target | None = None) -> Figure:
        return Figure(name, unit, gw.median(key), direct.median(key), target)

    def added(key: str) -> float | None:
        g, d = gw.median(key), direct.median(key)
        return None if g is None or d is None else g - d

    def alone(key: str, name: str, unit: str, target: Target | None = None) -> Figure:
        return Figure(name, unit, gw.median(key), None, target)

    ms = partial(Target, "<=", unit="ms")
    rps = Target(">=", 5000, "req/s")
    out = [pair("rps_c1", "throughput c=1", "req/s")]
    out += [pair(f"rps_c{c}", f"throughput c={c}", "req/s", rps) for c in CONCURRENCY[1:]]
    out += [pair(f"p50_c{c}", f"p50 latency c={c}", "ms") for c in CONCURRENCY]
    out += [pair(f"p99_c{c}", f"p99 latency c={c}", "ms") for c in CONCURRENCY]
    out.append(Figure("added p50 latency c=1", "ms", added("p50_c1"), None, ms(0.25)))
    out.append(Figure("added p99 latency c=1", "ms", added("p99_c1"), None, ms(0.5)))
    out += [pair(f"cpu_per_req_c{c}", f"CPU per request c={c}", "ms", ms(0.2)) for c in CONCURRENCY]
    out.append(pair("ttfb_p50", "stream TTFB p50", "ms"))
    out.append(Figure("added stream TTFB p50", "ms", added("ttfb_p50")))
    out.append(pair("stream_p50", "stream total p50", "ms"))
    out.append(pair("cpu_per_stream", "CPU per 20-chunk stream, output guard on", "ms", ms(0.5)))
    out.append(alone("rss_idle", "idle RSS, tokenizer loaded", "MB", Target("<=", 120, "MB")))
    out.append(alone("rss_loaded", "RSS after c=64 load", "MB"))
    out.append(alone("idle_cpu", "idle CPU after start-up", "%", Target("<=", 0.5, "%")))
    out.append(alone("startup", "start-up to /healthz", "s"))
    out.append(
        alone("startup_completion", "start-up to first good completion", "s", Target("<=", 1, "s"))
    )
    out.append(alone("startup_cpu", "CPU used up to the first good completion", "s"))
    return out


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, wrk {wrk_version}"
    )


def markdown(
    table: list[Figure], ends: tuple[Endpoint, Endpoint], opts: Options, context: dict[str, str]
) -> str:
    gateway, direct = ends
    foreign = gateway.samples.values["foreign_pct"] + direct.samples.values["foreign_pct"]
    lines = [
        "# Bulkhead benchmark: latest run",
        "",
        f"- date: {context['date']}",
        f"- machine: {context['machine']}",
        f"- load average before / after: {context['load_before']} / {context['load_after']}",
        f"- method: gateway on CPU 0, fake upstream + wrk + clients on CPU 1; median of "
        f"{opts.runs} runs of {opts.seconds} s (wrk -t1, after a {opts.warmup} s warm-up), "
        f"{opts.streams} sequential streams per streaming run, {opts.starts} fresh starts "
        f"(idle CPU over {opts.idle:.0f} s after the first completion, then RSS)",
        f"- tenant: {TENANT[opts.limited]}, default guards (output guard on)",
        f"- CPU taken by other processes during measured runs (% of one core): median "
        f"{median(foreign):.1f}, max {max(foreign):.1f} (runs above {loadgen.QUIET_PCT:.0f} "
        f"are retried up to {loadgen.MAX_TRIES} times)",
        "",
        markdown_table(table),
        "",
        "## Every run",
        "",
        *raw_values("gateway", gateway.samples),
        *raw_values("direct", direct.samples),
        "",
    ]
    return "\n".join(lines)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    opts = parse_args()
    ensure_tools()
    harness.pin_self()
    for sig in _STOP_SIGNALS:  # SIGINT too: a shell may start a background job with it ignored
        signal.signal(sig, _on_signal)
    context = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_before": load_average(),
    }
    try:
        with tempfile.TemporaryDirectory(prefix="bulkhead-bench-") as tmp:
            ends = run_all(opts, Path(tmp))
    except KeyboardInterrupt:
        log("interrupted: every started process was stopped")
        return 130
    context["load_after"] = load_average()
    table = figures(ends[0].samples, ends[1].samples)
    print(text_table(table))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(markdown(table, ends, opts, context))
    log(f"written to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
