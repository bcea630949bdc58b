"""Processes of the benchmark: the fake upstream and the gateway, pinned, and their clean-up.

Every process is started in its own session (so its whole process group can be
killed) and pinned with `taskset`: the gateway to `GATEWAY_CPU`, everything
else (fake upstream, wrk, the streaming client, this script) to `LOAD_CPU`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
GATEWAY_CPU = 0
LOAD_CPU = 1
BIN = Path(sys.executable).parent
BULKHEAD = BIN / "bulkhead"
STREAM_CHUNKS = 20

# The children run from compiled bytecode, as the image runs them (deploy/image/Containerfile
# ends with `compileall`): a source tree under PYTHONDONTWRITEBYTECODE would compile every
# module of the gateway at every start (some 0.3 s of CPU), which no deployment does.  The
# bytecode is kept outside the tree, checked against each source's mtime as usual.
PYCACHE = Path(tempfile.gettempdir()) / f"bulkhead-bench-pycache-{os.getuid()}"

# The CLI and the health probe must never go through a proxy to reach 127.0.0.1.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pin_self() -> None:
    """Pin this script (and so, by inheritance, the clients it runs) to the load CPU."""
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench needs at least 2 CPUs: the gateway gets CPU 0, the load CPU 1")
    os.sched_setaffinity(0, {LOAD_CPU})


def child_env(**extra: str) -> dict[str, str]:
    """The environment without any BULKHEAD_* setting (e.g. a PostgreSQL URL) or proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = f"{HOST},localhost"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """One started process: `pid` is the pinned program itself (taskset execs it)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def spawn(name: str, cmd: list[str], cpu: int, log: Path, env: dict[str, str]) -> Service:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *cmd],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return Service(name, proc, log)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop(service: Service, grace_s: float = 5.0) -> None:
    """SIGTERM the service's process group, then SIGKILL whatever is left (idempotent)."""
    if service.stopped:
        return
    service.stopped = True
    if service.proc.poll() is None:
        _signal_group(service.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.proc.wait(grace_s)
    _signal_group(service.pid, signal.SIGKILL)
    service.proc.wait()


def http_status(url: str, timeout_s: float = 1.0) -> int:
    """The HTTP status of GET url, or 0 when nothing answers."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def wait_until(ready: str, service: Service, timeout_s: float, accept_any: bool = False) -> float:
    """Poll `ready` until it answers 200 (or anything, if `accept_any`); return the seconds."""
    start = time.perf_counter()
    while True:
        status = http_status(ready)
        if status == 200 or (accept_any and status):
            return time.perf_counter() - start
        service.check_alive()
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(
                f"{service.name} not ready after {timeout_s}s:\n{service.log_tail()}"
            )
        time.sleep(0.002)


def start_upstream(workdir: Path, port: int) -> Service:
    cmd = [sys.executable, "-m", "bulkhead.testing.fake_upstream", "--host", HOST]
    cmd += ["--port", str(port), "--chunks", str(STREAM_CHUNKS)]
    return spawn("fake upstream", cmd, LOAD_CPU, workdir / "upstream.log", child_env())


def start_gateway(
    data_dir: Path, port: int, log: Path, bulkhead: Path = BULKHEAD, **extra_env: str
) -> Service:
    cmd = [str(bulkhead), "--data-dir", str(data_dir), "serve", "--host", HOST]
    cmd += ["--port", str(port), "--metrics-port", str(free_port())]
    env = child_env(BULKHEAD_START_WORKERS="0", **extra_env)
    return spawn("gateway", cmd, GATEWAY_CPU, log, env)


def cli(data_dir: Path, *args: str) -> str:
    cmd = [str(BULKHEAD), "--data-dir", str(data_dir), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"`bulkhead {' '.join(args[:4])}` failed:\n{done.stderr[-2000:]}")
    return done.stdout


def init_store(data_dir: Path) -> str:
    """`bulkhead init`; return the platform admin key."""
    return str(json.loads(cli(data_dir, "init", "--json"))["admin_key"])


def second_admin(data_dir: Path) -> str:
    """A second platform admin's key, written into the store: privileged set-up steps need a
    grant that a different admin approves (`bulkhead access request` / `approve`)."""
    from bulkhead.domain import PrincipalKind, Role
    from bulkhead.settings import load
    from bulkhead.store import Database, repo

    db = Database(load(data_dir=data_dir).database_url)
    with db.platform_transaction() as session:
        kind, roles = PrincipalKind.USER, [Role.PLATFORM_ADMIN]
        approver = repo.create_principal(session, None, "bench-approver", kind, roles)
        made = repo.create_key(
            session, None, role=Role.PLATFORM_ADMIN, principal=approver, name="bench-approver"
        )
    time.sleep(3.0)  # the gateway's catalog poll
    return str(made.secret)


def granted(data_dir: Path, admin: tuple[str, ...], approver: str, action: str) -> None:
    """A live grant of `action` on tenant `bench` for the bootstrap admin, the PAM way."""
    ask = ("access", "request", "--action", action, "--target", "bench", "--json")
    made = json.loads(cli(data_dir, *admin, *ask, "--reason", "benchmark set-up"))
    cli(data_dir, *admin[:2], "--key", approver, "access", "approve", str(made["id"]))


# Finite limits far above what one core serves: admission reserves in them, so every call's
# prompt is counted with the o200k tokenizer, yet no benchmark run is ever throttled.
FINITE_LIMITS = ("--rpm", "100000000", "--tpm", "100000000000", "--concurrency", "100000")
LIFTED_LIMITS = ("--rpm", "none", "--tpm", "none", "--concurrency", "none")


def provision(
    data_dir: Path, gateway_url: str, admin_key: str, upstream_port: int, limited: bool = True
) -> str:
    """Create tenant `bench`, shared model `fake` on the upstream, grant it; return a key.

    `limited`: the tenant gets `FINITE_LIMITS` (admission counts tokens, as for a real tenant);
    otherwise its limits are lifted (admission still runs, but counts nothing)."""
    admin = ("--server", gateway_url, "--key", admin_key)
    upstream = f"http://{HOST}:{upstream_port}/v1"
    cli(data_dir, *admin, "tenant", "create", "bench")
    approver = second_admin(data_dir)
    for action in ("admin:quota_requests.approve", "admin:keys.create"):
        granted(data_dir, admin, approver, action)
    limits = FINITE_LIMITS if limited else LIFTED_LIMITS
    cli(data_dir, *admin, "tenant", "set-limits", "bench", *limits)
    model = ("model", "add", "fake", "--upstream", upstream, "--upstream-model", "fake-1")
    cli(data_dir, *admin, *model, "--shared", "--max-in-flight", "100000")
    cli(data_dir, *admin, "model", "grant", "fake", "--tenant", "bench")
    created = cli(data_dir, *admin, "key", "create", "--tenant", "bench", "--json")
    return str(json.loads(created)["secret"])


if __name__ == "__main__":
    # `python harness.py provision DATA_DIR GATEWAY_URL ADMIN_KEY UPSTREAM_PORT [lifted]`: the
    # set-up of `provision` run by another checkout's interpreter (bench/ab.py compares two).
    if len(sys.argv) not in (6, 7) or sys.argv[1] != "provision":
        raise SystemExit(__doc__)
    lifted = sys.argv[6:] == ["lifted"]
    print(provision(Path(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), not lifted))
