"""The seccomp filter in a child process: what it refuses, and what a worker still does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from tests.support.sandbox import expected_features

from bulkhead.runtime.sandbox import Feature
from bulkhead.runtime.sandbox._seccomp import DENIED

CHILD = textwrap.dedent(
    """
    import ctypes, os, socket, threading
    from bulkhead.runtime.sandbox import _seccomp
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)
    _seccomp.install()

    def outcome(attempt):
        try:
            attempt()
            return "allowed"
        except OSError as exc:
            return f"refused {exc.errno}"

    def unshare():
        if libc.unshare(0x10000000) != 0:
            raise OSError(ctypes.get_errno(), "unshare")

    seen = []
    thread = threading.Thread(target=lambda: seen.append(1))
    thread.start()
    thread.join()
    print("thread", "ran" if seen else "did not run")
    print("unix", outcome(lambda: socket.socket(socket.AF_UNIX).close()))
    print("socketpair", outcome(lambda: [s.close() for s in socket.socketpair()]))
    print("inet", outcome(lambda: socket.socket(socket.AF_INET).close()))
    print("vsock", outcome(lambda: socket.socket(40, socket.SOCK_STREAM).close()))
    print("unshare", outcome(unshare))
    print("exec", outcome(lambda: os.execv("/bin/true", ["true"])))
    """
)


def test_the_filter_refuses_what_a_worker_never_needs_and_keeps_the_rest() -> None:
    if Feature.SECCOMP not in expected_features():
        pytest.skip("this kernel has no seccomp filters")
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines == {
        "thread": "ran",  # clone3 answers ENOSYS and the C library falls back to clone
        "unix": "allowed",
        "socketpair": "allowed",
        "inet": "refused 1",
        "vsock": "refused 1",
        "unshare": "refused 1",
        "exec": "refused 1",
    }


def test_the_deny_list_names_the_calls_the_issue_names() -> None:
    named = {"ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2"}
    named |= {"pivot_root", "unshare", "setns", "kexec_load", "bpf", "perf_event_open"}
    named |= {"keyctl", "execve", "execveat"}
    assert named <= set(DENIED)
