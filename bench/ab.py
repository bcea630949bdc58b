"""Two checkouts of Bulkhead side by side: is a change faster or slower, beyond the noise?

`bench/run.py` measures one checkout; comparing two of its runs made minutes
apart mixes the change with the machine's drift (the same code varies by ±6 %
between runs here).  This script starts one fake upstream and one gateway per
checkout (each from its own virtual environment, each pinned to CPU 0, each
with its own data dir) and alternates short measured runs between them, A B B A
A B ..., so drift falls on both sides alike.  It prints, per load, the medians
of CPU per request and throughput and the ratio B/A with the spread of the
paired ratios.

Usage: python bench/ab.py --a ../base [--b .] [--pairs 8] [--seconds 3]
A checkout is a directory holding `.venv/bin/bulkhead` and `bench/harness.py`.
One checkout against itself with a setting changed on one side:
python bench/ab.py --a . --a-env BULKHEAD_HTTP_SERVER=uvicorn \
    --a-env BULKHEAD_HTTP_UVICORN_UNBOUNDED=1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import harness
import loadgen
from harness import HOST, Service

CHAT_PATH = "/v1/chat/completions"
LOADS = ("c1", "c16", "c64", "stream")


@dataclass
class Side:
    name: str
    checkout: Path
    env: dict[str, str] = field(default_factory=dict)  # what its gateway alone is started with
    url: str = ""
    key: str = ""
    service: Service | None = None
    cpu: dict[str, list[float]] = field(default_factory=dict)
    rps: dict[str, list[float]] = field(default_factory=dict)
    p50: dict[str, list[float]] = field(default_factory=dict)
    p99: dict[str, list[float]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.service is not None
        return self.service.pid


def start(
    stack: contextlib.ExitStack, side: Side, workdir: Path, up_port: int, limits: str
) -> None:
    """Initialise, start and provision `side`'s gateway with its own checkout's code.

    The provisioning script is this checkout's `harness.py` (run by `side`'s interpreter,
    so with its code), so both sides get the same tenant: `limits` finite or lifted."""
    venv = side.checkout / ".venv" / "bin"
    data = workdir / side.name / "data"
    data.parent.mkdir(parents=True)
    env = harness.child_env()
    init = [str(venv / "bulkhead"), "--data-dir", str(data), "init", "--json"]
    made = subprocess.run(init, capture_output=True, text=True, env=env, timeout=120, check=True)
    admin_key = str(json.loads(made.stdout)["admin_key"])
    port = harness.free_port()
    side.service = harness.start_gateway(
        data, port, workdir / side.name / "gateway.log", bulkhead=venv / "bulkhead", **side.env
    )
    stack.callback(harness.stop, side.service)
    base = f"http://{HOST}:{port}"
    harness.wait_until(base + "/healthz", side.service, timeout_s=60)
    script = Path(__file__).with_name("harness.py").resolve()
    setup = [str(venv / "python"), str(script), "provision", str(data), base, admin_key]
    extra = ["lifted"] if limits == "lifted" else []
    done = subprocess.run(
        [*setup, str(up_port), *extra], capture_output=True, text=True, env=env, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"provisioning {side.name} failed:\n{done.stderr[-2000:]}")
    side.url, side.key = base + CHAT_PATH, done.stdout.strip().splitlines()[-1]


def one_run(side: Side, watch: tuple[int, ...], load: str, seconds: int, streams: int) -> None:
    """One measured run on `side`; `watch`: both gateways (the idle one is not foreign load)."""
    if load == "stream":
        body = loadgen.chat_body("fake", stream=True)
        _, used = loadgen.measured(
            watch, lambda: loadgen.streams(side.url, body, side.key, streams)
        )
        side.cpu.setdefault(load, []).append(used.cpu_ms[side.pid] / streams)
        return
    body, conns = loadgen.chat_body("fake"), int(load[1:])
    result, used = loadgen.measured(
        watch, lambda: loadgen.wrk(side.url, body, side.key, conns, seconds)
    )
    side.cpu.setdefault(load, []).append(used.cpu_ms[side.pid] / result.requests)
    side.rps.setdefault(load, []).append(result.rps)
    side.p50.setdefault(load, []).append(result.p50_ms)
    side.p99.setdefault(load, []).append(result.p99_ms)


def compare(a: Side, b: Side, loads: tuple[str, ...], pairs: int, seconds: int) -> None:
    streams = 300
    for load in loads:  # warm both
        for side in (a, b):
            if load == "stream":
                loadgen.streams(side.url, loadgen.chat_body("fake", stream=True), side.key, 30)
            else:
                loadgen.wrk(side.url, loadgen.chat_body("fake"), side.key, int(load[1:]), 1)
    for n in range(pairs):
        order = (a, b) if n % 2 == 0 else (b, a)
        for load in loads:
            for side in order:
                one_run(side, (a.pid, b.pid), load, seconds, streams)
        print(f"pair {n + 1}/{pairs} done", file=sys.stderr, flush=True)


def report(a: Side, b: Side, loads: tuple[str, ...]) -> str:
    lines = [
        f"A = {a.checkout} {a.env or ''}, B = {b.checkout} {b.env or ''}; "
        f"medians of {len(a.cpu[loads[0]])} paired runs",
        "",
        "| load | CPU/req A (ms) | CPU/req B (ms) | B/A | paired B/A min-max | req/s A | req/s B "
        "| p50 A / B (ms) | p99 A / B (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for load in loads:
        ca, cb = a.cpu[load], b.cpu[load]
        ratios = sorted(y / x for x, y in zip(ca, cb, strict=True))
        lines.append(
            f"| {load} | {median(ca):.3f} | {median(cb):.3f} | {median(ratios):.3f} "
            f"| {ratios[0]:.3f} to {ratios[-1]:.3f} | {_median(a.rps, load, ',.0f')} "
            f"| {_median(b.rps, load, ',.0f')} "
            f"| {_median(a.p50, load, '.2f')} / {_median(b.p50, load, '.2f')} "
            f"| {_median(a.p99, load, '.2f')} / {_median(b.p99, load, '.2f')} |"
        )
    return "\n".join(lines)


def _median(values: dict[str, list[float]], load: str, spec: str) -> str:
    return format(median(values[load]), spec) if load in values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="the checkout to compare against")
    parser.add_argument("--b", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--limits", choices=("finite", "lifted"), default="finite")
    for name in ("a", "b"):
        parser.add_argument(
            f"--{name}-env",
            action="append",
            default=[],
            metavar="VAR=VALUE",
            help=f"an environment variable of {name.upper()}'s gateway only (repeatable)",
        )
    loads_help = "comma-separated: " + ",".join(LOADS)
    parser.add_argument("--loads", default=",".join(LOADS), help=loads_help)
    opts = parser.parse_args()
    loads = tuple(opts.loads.split(","))
    harness.pin_self()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    a = Side("A", opts.a.resolve(), dict(pair.split("=", 1) for pair in opts.a_env))
    b = Side("B", opts.b.resolve(), dict(pair.split("=", 1) for pair in opts.b_env))
    with tempfile.TemporaryDirectory(prefix="bulkhead-ab-") as tmp, contextlib.ExitStack() as stack:
        workdir, up_port = Path(tmp), harness.free_port()
        upstream = harness.start_upstream(workdir, up_port)
        stack.callback(harness.stop, upstream)
        harness.wait_until(f"http://{HOST}:{up_port}{CHAT_PATH}", upstream, 30, accept_any=True)
        for side in (a, b):
            start(stack, side, workdir, up_port, opts.limits)
        compare(a, b, loads, opts.pairs, opts.seconds)
    print(report(a, b, loads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
