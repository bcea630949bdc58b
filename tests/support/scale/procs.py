"""Supervised child processes of the scale-out stack: each in a session of its own.

Every process the stack starts is the leader of a new session (and so of a
new process group): stopping it signals the whole group, so whatever it
forked (PostgreSQL's backends, nginx's workers, `runuser`'s child) goes with
it, and `leftovers` finds any process still in one of those sessions, which
is how the tests prove nothing outlives the stack.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Nothing in the stack may go through a proxy to reach 127.0.0.1.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without BULKHEAD_* settings or proxies, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


@dataclass
class Proc:
    """One supervised program; `start` may be called again after it stopped (a restart)."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=clean_env)
    stop_signal: signal.Signals = signal.SIGTERM
    popen: subprocess.Popen[bytes] | None = None
    sessions: set[int] = field(default_factory=set)  # every session this Proc has led

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.sessions.add(self.popen.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            code = self.popen.returncode if self.popen else None
            raise RuntimeError(f"{self.name} exited ({code}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the program alone (not its group): what an operator's `kill` does."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait(self, timeout_s: float) -> int | None:
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill9(self) -> None:
        """SIGKILL the program alone, as a crash would (its group is left as it is)."""
        self.signal(signal.SIGKILL)
        self.wait(10)

    def stop(self, grace_s: float = 10.0) -> None:
        """The stop signal to the whole group, then SIGKILL to whatever is left (idempotent)."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            _signal_group(self.pid, self.stop_signal)
            self.wait(grace_s)
        for sid in self.sessions:
            _signal_group(sid, signal.SIGKILL)
        self.wait(10)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def leftovers(sessions: Iterable[int], marker: str | None = None) -> list[str]:
    """Processes still in one of `sessions`, or whose command line holds `marker`.

    Each is given as "pid command"; an empty list means nothing outlived its supervisor.
    """
    wanted, found = set(sessions), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, sid = fields[0], int(fields[3])  # fields 3 (state) and 6 (session)
        if state == "Z":
            continue  # reaped by its parent shortly; it holds nothing
        if sid in wanted or (marker is not None and marker in cmdline):
            found.append(f"{entry.name} {cmdline.strip()[:200]}")
    return found


def http_status(url: str, timeout_s: float = 1.0) -> int:
    """The HTTP status of GET `url`, or 0 when nothing answers."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def wait_ready(url: str, proc: Proc, timeout_s: float, *, any_status: bool = False) -> float:
    """Poll GET `url` until it answers 200 (or anything, with `any_status`); return seconds."""
    start = time.monotonic()
    while True:
        status = http_status(url)
        if status == 200 or (any_status and status):
            return time.monotonic() - start
        proc.check_alive()
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(f"{proc.name} not ready after {timeout_s}s:\n{proc.log_tail()}")
        time.sleep(0.02)
