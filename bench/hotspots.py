"""Profile the gateway under one bench load with py-spy, and print its hot spots.

Same set-up as bench/run.py (gateway on CPU 0, everything else on CPU 1); py-spy
samples the gateway for the length of one load run and its collapsed stacks are
written to bench/results/profile-<load>.txt.  Needs py-spy (`pip install py-spy`).
Usage: python bench/hotspots.py [--load c64|c16|c1|stream] [--seconds 10] [--lifted]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import harness
import loadgen
from run import RESULTS, Endpoint, ensure_tools, start_services

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_OUTER = ("bulkhead/cli/", "bulkhead/app/")  # entry points, not the work of a request


@dataclass
class Profile:
    """py-spy's raw stacks summed four ways, in samples."""

    total: int = 0
    own: Counter[str] = field(default_factory=Counter)  # leaf function
    inclusive: Counter[str] = field(default_factory=Counter)  # function anywhere on the stack
    by_code: Counter[str] = field(default_factory=Counter)  # innermost bulkhead function
    by_package: Counter[str] = field(default_factory=Counter)  # package of the leaf

    def add(self, frames: list[tuple[str, str]], n: int) -> None:
        names = [f"{func} ({file})" for func, file in frames]
        self.total += n
        self.own[names[-1]] += n
        for name in set(names):
            self.inclusive[name] += n
        self.by_code[_innermost_bulkhead(frames)] += n
        self.by_package[_package(frames[-1][1])] += n


def _parse_frame(frame: str) -> tuple[str, str]:
    found = _FRAME.match(frame)
    return (frame, "?") if found is None else (found["func"], found["file"])


def _package(file: str) -> str:
    """`aiohttp/client.py` -> aiohttp; native frames keep their file (libc.so.6, loop.c)."""
    return file.split("/", 1)[0].removesuffix(".py") if file.endswith(".py") else file


def _innermost_bulkhead(frames: list[tuple[str, str]]) -> str:
    for func, file in reversed(frames):
        if file.startswith("bulkhead/") and not file.startswith(_OUTER):
            return f"{func} ({file})"
    python = [file for _, file in frames if file.endswith(".py")]
    return f"outside bulkhead code: {_package(python[-1]) if python else 'native'}"


def parse(raw: str) -> Profile:
    profile = Profile()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            profile.add([_parse_frame(f) for f in stack.split(";")], int(count))
    return profile


def print_top(title: str, counts: Counter[str], total: int, top: int) -> None:
    print(f"\n{title} (% of {total} samples)")
    for name, n in counts.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")


def drive(gateway: Endpoint, load: str, seconds: int) -> int:
    """Send the chosen load to the gateway for about `seconds`; return requests completed."""
    if load == "stream":
        body = loadgen.chat_body(gateway.model, stream=True)
        deadline, done = time.perf_counter() + seconds, 0
        while time.perf_counter() < deadline:
            done += loadgen.streams(gateway.url, body, gateway.key, 100).streams
        return done
    body = loadgen.chat_body(gateway.model)
    connections = int(load.removeprefix("c"))
    return loadgen.wrk(gateway.url, body, gateway.key, connections, seconds).requests


def py_spy() -> str:
    found = shutil.which("py-spy") or str(harness.BIN / "py-spy")
    if not Path(found).exists():
        sys.exit("py-spy not found: pip install py-spy")
    return found


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """Thread id -> (user ms, system ms) so far."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        times[int(task.name)] = (
            int(fields[11]) * 1000 / loadgen.CLK_TCK,
            int(fields[12]) * 1000 / loadgen.CLK_TCK,
        )
    return times


def thread_names(pid: int) -> dict[int, str]:
    """Thread id -> Python thread name, from `py-spy dump`."""
    dump = subprocess.run([py_spy(), "dump", "--pid", str(pid)], capture_output=True, text=True)
    found = re.findall(r'^Thread (?:0x)?(\d+) \([^)]*\): "([^"]*)"', dump.stdout, re.M)
    return {int(tid): name for tid, name in found}


def print_threads(gateway: Endpoint, load: str, seconds: int) -> None:
    """CPU per request of each gateway thread, over one load run without the profiler."""
    pid = gateway.service.pid
    names = thread_names(pid)
    before = thread_cpu(pid)
    done = drive(gateway, load, seconds)
    after = thread_cpu(pid)
    print(f"\nCPU per request by thread, {load}, {done} requests (no profiler attached)")
    for tid, (user, system) in sorted(after.items()):
        user -= before.get(tid, (0.0, 0.0))[0]
        system -= before.get(tid, (0.0, 0.0))[1]
        if user or system:
            name = names.get(tid, "?")
            print(
                f"  {name:28} user {1000 * user / done:6.1f} us  sys {1000 * system / done:6.1f} us"
            )


def profile(gateway: Endpoint, load: str, seconds: int, out: Path) -> str:
    """Run py-spy (on the load CPU) on the gateway while the load runs; return raw stacks.

    `--gil` keeps only samples of the thread holding the GIL (Python CPU, not threads
    blocked in I/O); `--native` splits out C frames (uvloop, httptools, GC, syscalls).
    """
    cmd = ["taskset", "-c", str(harness.LOAD_CPU), py_spy(), "record", "--gil", "--native"]
    cmd += ["--pid", str(gateway.service.pid), "--duration", str(seconds), "--rate", "250"]
    cmd += ["--format", "raw", "-o", str(out)]
    recorder = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        drive(gateway, load, seconds)
        _, err = recorder.communicate(timeout=seconds + 30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    if recorder.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-1000:]}")
    return out.read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", choices=("c1", "c16", "c64", "stream"), default="c64")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--lifted", action="store_true", help="the tenant's limits lifted")
    args = parser.parse_args()
    ensure_tools()
    py_spy()
    harness.pin_self()
    out = RESULTS.with_name(f"profile-{args.load}.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bulkhead-prof-") as tmp, contextlib.ExitStack() as st:
        gateway, direct = start_services(st, Path(tmp), limited=not args.lifted)
        watch = (gateway.service.pid, direct.service.pid)
        loadgen.wrk(gateway.url, loadgen.chat_body(gateway.model), gateway.key, 16, 2)  # warm-up
        loadgen.wait_quiet(watch)
        print_threads(gateway, args.load, args.seconds)
        loadgen.wait_quiet(watch)
        raw = profile(gateway, args.load, args.seconds, out)
    prof = parse(raw)
    print_top("self time, by function", prof.own, prof.total, args.top)
    print_top("self time, by package or native file", prof.by_package, prof.total, args.top)
    print_top(
        "by innermost bulkhead function (with what it calls)", prof.by_code, prof.total, args.top
    )
    print_top("inclusive time, by function", prof.inclusive, prof.total, args.top)
    print(f"\nstacks: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
