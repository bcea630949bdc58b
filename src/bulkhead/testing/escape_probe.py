"""Escape attempts from inside a sandboxed worker, for the security tests only.

Run it where a worker runs: ``WorkerSupervisor(worker_module=__name__)`` starts it
exactly as it starts a model worker, sandbox and all.  As a worker, its model name says
what to do: ``idle`` waits to be a sibling the attacker aims at; ``attack:PORT:DATA_DIR``
tries every escape below against the gateway's TCP port PORT, the data dir and the
``idle`` sibling, writes the outcomes as JSON to ``escape.json`` in its own directory,
then prints READY.  ``python -m bulkhead.runtime.sandbox PLAN bulkhead.testing.escape_probe
--attack`` with ``--port``, ``--data``, ``--sibling`` and ``--gateway`` prints them on
stdout instead.

Each outcome is ``allowed`` or ``refused: ERRNO``.  The product never imports this.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MODULE = "bulkhead.testing.escape_probe"
SECRET_NAME = "secret.txt"  # noqa: S105 (a file name)
_PTRACE_SEIZE = 0x4206
_MNT_DETACH = 2
_CLONE_NEWUSER = 0x10000000


@dataclass(frozen=True, slots=True)
class Targets:
    port: int
    data_dir: Path
    sibling: int
    gateway: int
    scratch: Path


class _IoVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


def _libc_call(name: str, *args: object) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _connect(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def _read_secret(data_dir: Path) -> None:
    (data_dir / SECRET_NAME).read_bytes()


def _read(path: str) -> None:
    with open(path, "rb") as file:
        file.read(1)


def _write(path: Path) -> None:
    path.write_text("escaped")
    path.unlink()


def _ptrace(pid: int) -> None:
    # SEIZE does not stop the tracee; it is let go when this process exits.
    _libc_call("ptrace", _PTRACE_SEIZE, pid, None, None)


def _vm_read(pid: int) -> None:
    buffer = ctypes.create_string_buffer(8)
    local = _IoVec(ctypes.cast(buffer, ctypes.c_void_p), 8)
    remote = _IoVec(0x400000, 8)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    count = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    # EFAULT means the kernel let us in and only the address was wrong.
    if count < 0 and ctypes.get_errno() != errno.EFAULT:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _exec_shell() -> None:
    subprocess.run(["/bin/sh", "-c", "true"], check=True, timeout=5)


def _mount(scratch: Path) -> None:
    """Mount a tmpfs on a directory of its own, and take it off again if that worked.

    The target is harmless on purpose: the control run, with no sandbox at all, does
    manage to mount, and in the gateway's own mount namespace.
    """
    target = scratch / "mountpoint"
    target.mkdir(exist_ok=True)
    raw = os.fsencode(target)
    _libc_call("mount", b"tmpfs", raw, b"tmpfs", ctypes.c_ulong(0), None)
    _libc_call("umount2", raw, _MNT_DETACH)


def attempts(t: Targets) -> dict[str, Callable[[], None]]:
    """Every escape, by name, after `write_scratch`: the control that must be allowed.

    None may do lasting harm where it succeeds: the tests also run it unconfined.
    """
    return {
        "write_scratch": lambda: _write(t.scratch / "ok.txt"),
        "inet_socket": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(),
        "inet6_socket": lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close(),
        "packet_socket": lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close(),
        "netlink_socket": lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close(),
        "connect_gateway_port": lambda: _connect(t.port),
        "list_data_dir": lambda: _nonempty(os.listdir(t.data_dir)),
        "read_data_dir": lambda: _read_secret(t.data_dir),
        "read_sibling_mem": lambda: _read(f"/proc/{t.sibling}/mem"),
        "read_sibling_environ": lambda: _read(f"/proc/{t.sibling}/environ"),
        "read_gateway_environ": lambda: _read(f"/proc/{t.gateway}/environ"),
        "ptrace_sibling": lambda: _ptrace(t.sibling),
        "vm_read_sibling": lambda: _vm_read(t.sibling),
        "signal_gateway": lambda: os.kill(t.gateway, 0),
        "write_outside_scratch": lambda: _write(t.scratch.parent / "escaped.txt"),
        "write_tmp": lambda: _write(Path("/tmp") / f"bulkhead-escape-{os.getpid()}"),  # noqa: S108
        "exec_shell": _exec_shell,
        "mount": lambda: _mount(t.scratch),
        "become_root": lambda: os.setuid(0),
        # Last: where it works, it changes who this process is for anything after it.
        "unshare_user_namespace": lambda: _libc_call("unshare", _CLONE_NEWUSER),
    }


def _nonempty(entries: list[str]) -> None:
    # An empty listing (a covered directory) leaks nothing.
    if not entries:
        raise OSError(errno.ENOENT, "empty")


def run_attempts(t: Targets) -> dict[str, str]:
    outcomes = {}
    for name, attempt in attempts(t).items():
        try:
            attempt()
        except (OSError, subprocess.SubprocessError) as exc:
            code = getattr(exc, "errno", None)
            outcomes[name] = f"refused: {errno.errorcode.get(code or 0, type(exc).__name__)}"
        else:
            outcomes[name] = "allowed"
    return outcomes


def _as_worker(args: argparse.Namespace) -> int:
    """Behave like a worker: read the token, do the model name's job, print READY, wait."""
    sys.stdin.buffer.readline()
    scratch = Path(args.socket).parent
    if args.model_name.startswith("attack:"):
        _, port, data_dir = args.model_name.split(":", 2)
        targets = Targets(int(port), Path(data_dir), _find_idle(), os.getppid(), scratch)
        (scratch / "escape.json").write_text(json.dumps(run_attempts(targets)))
    print(f"READY {args.socket}", flush=True)
    signal.pause()
    return 0


def _find_idle() -> int:
    """The pid of the `idle` probe: its command line names it."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if MODULE.encode() in words and b"idle" in words:
            return int(entry.name)
    raise SystemExit("no idle sibling found")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="escape_probe")
    parser.add_argument("--socket")
    parser.add_argument("--kind")
    parser.add_argument("--model-name", default="")
    parser.add_argument("--mtls", action="store_true")
    parser.add_argument("--attack", action="store_true")
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--sibling", type=int, default=0)
    parser.add_argument("--gateway", type=int, default=0)
    args = parser.parse_args(argv)
    if args.socket:
        return _as_worker(args)
    if args.idle:
        print("IDLE", flush=True)
        sys.stdin.buffer.read()
        return 0
    targets = Targets(args.port, args.data, args.sibling, args.gateway, Path.cwd())
    print(json.dumps(run_attempts(targets)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
