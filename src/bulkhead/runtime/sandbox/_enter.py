"""The first thing a sandboxed process does: confine itself, say so, then run its program.

``python -I -B -m bulkhead.runtime.sandbox PLAN MODULE [ARG...]`` starts as the
gateway's user (root, where the privileged layers are wanted), applies the `Plan` in
an order where each step still has the privilege it needs, checks with the kernel what
is actually in force, prints one ``SANDBOX feature,feature,...`` line on stdout, and
runs MODULE as ``__main__`` in this same process.  There is no second ``execve``:
seccomp refuses it from here on, and everything the program imports is read through
the filesystem view and Landlock rules set up here.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import runpy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from bulkhead.runtime import lineage
from bulkhead.runtime.sandbox import _landlock, _seccomp
from bulkhead.runtime.sandbox._plan import Exposure, Plan
from bulkhead.runtime.sandbox._profile import Feature

log = logging.getLogger("bulkhead.sandbox")

_CLONE_NEWNS: Final = 0x00020000
_CLONE_NEWNET: Final = 0x40000000
_MS_RDONLY: Final = 1
_MS_NOSUID: Final = 2
_MS_NODEV: Final = 4
_MS_NOEXEC: Final = 8
_MS_REMOUNT: Final = 32
_MS_BIND: Final = 4096
_MS_REC: Final = 16384
_MS_PRIVATE: Final = 1 << 18
_PR_GET_DUMPABLE: Final = 3
_PR_SET_DUMPABLE: Final = 4
_PR_SET_NO_NEW_PRIVS: Final = 38
EXIT_REFUSED: Final = 3


class SandboxFailure(Exception):
    """A feature the plan requires could not be put in force."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _unshare(flags: int) -> None:
    _check(_libc().unshare(flags), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    def raw(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    result = _libc().mount(raw(source), raw(target), raw(fstype), ctypes.c_ulong(flags), raw(data))
    _check(result, f"mount {target}")


def _prctl(option: int, value: int) -> int:
    libc = _libc()
    result = int(libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0))
    if result < 0:
        _check(result, "prctl")
    return result


# The steps, in order -------------------------------------------------------------------


def _join_cgroup(plan: Plan) -> None:
    assert plan.cgroup_procs is not None
    Path(plan.cgroup_procs).write_text(str(os.getpid()))


def _new_network(plan: Plan) -> None:
    # A fresh network namespace has only a loopback interface, and it is down.
    _unshare(_CLONE_NEWNET)


def _new_view(plan: Plan) -> None:
    _unshare(_CLONE_NEWNS)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    previous = os.umask(0o022)
    try:
        for exposure in plan.expose:
            _expose(exposure)
    finally:
        os.umask(previous)
    for path in plan.hide:
        if os.path.lexists(path):
            flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
            _mount("tmpfs", path, "tmpfs", flags, "mode=000,size=4k")


def _expose(exposure: Exposure) -> None:
    """Cover `exposure.over` with an empty tmpfs and bind back only the needed paths.

    The paths are opened first: once the tmpfs hides them, the open descriptors are the
    only way left to name the originals.
    """
    handles = [
        (path, os.open(path, os.O_PATH | os.O_CLOEXEC))
        for path in exposure.paths
        if os.path.exists(path)
    ]
    _mount("tmpfs", exposure.over, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
    for path, fd in handles:
        source = f"/proc/self/fd/{fd}"
        if os.path.isdir(source):
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            Path(path).touch(mode=0o644)
        _mount(source, path, None, _MS_BIND | _MS_REC)
        _mount(None, path, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
        os.close(fd)
    _mount(None, exposure.over, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)


def _set_rlimits(plan: Plan) -> None:
    for name, soft, hard in plan.rlimits:
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _drop_uid(plan: Plan) -> None:
    assert plan.uid is not None
    os.setgroups([])
    os.setresgid(plan.uid, plan.uid, plan.uid)
    os.setresuid(plan.uid, plan.uid, plan.uid)
    # Changing the effective uid cleared the parent-death signal: arm it again (and
    # exit if the supervisor died meanwhile).
    lineage.die_with_supervisor()


def _no_new_privs(plan: Plan) -> None:
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def _no_dump(plan: Plan) -> None:
    _prctl(_PR_SET_DUMPABLE, 0)


def _single_threaded() -> None:
    """Landlock binds only the calling thread (and the threads it starts later)."""
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise OSError(f"{threads} threads are already running and would stay unconfined")


def _landlock_rules(plan: Plan) -> None:
    _single_threaded()
    abi = plan.landlock_abi
    device = _landlock.READ_FILE | _landlock.WRITE_FILE | _landlock.IOCTL_DEV
    rules = [
        *(_landlock.Rule(Path(p), _landlock.READ) for p in plan.read),
        *(_landlock.Rule(Path(p), _landlock.writable(abi)) for p in plan.write),
        *(_landlock.Rule(Path(p), device) for p in plan.devices),
    ]
    _landlock.restrict_self(rules, abi)


def _seccomp_filter(plan: Plan) -> None:
    _seccomp.install()


Step = Callable[[Plan], None]
STEPS: Final[tuple[tuple[Feature, Step], ...]] = (
    (Feature.CGROUP, _join_cgroup),
    (Feature.NETNS, _new_network),
    (Feature.FS_VIEW, _new_view),
    (Feature.RLIMITS, _set_rlimits),
    (Feature.UID, _drop_uid),
    (Feature.NO_NEW_PRIVS, _no_new_privs),
    (Feature.NO_DUMP, _no_dump),
    (Feature.LANDLOCK, _landlock_rules),
    (Feature.SECCOMP, _seccomp_filter),
)
# Without its filesystem view, a dropped uid could not read the interpreter's files.
_NEEDS: Final = {Feature.UID: Feature.FS_VIEW}


def apply(plan: Plan) -> frozenset[Feature]:
    """Put `plan` in force, step by step; return what the kernel says is in force."""
    applied: set[Feature] = set()
    if Feature.SECCOMP in plan.features:
        # Where it fails, the seccomp step fails the same way and says why.
        with contextlib.suppress(ImportError, RuntimeError, OSError):
            _seccomp.preload()
    for feature, step in STEPS:
        if feature not in plan.features:
            continue
        needed = _NEEDS.get(feature)
        if needed is not None and plan.expose and needed not in applied:
            _skip(plan, feature, f"it needs {needed}")
            continue
        try:
            step(plan)
        except (OSError, ValueError, ImportError, RuntimeError) as exc:
            _skip(plan, feature, f"{type(exc).__name__}: {exc}")
            continue
        applied.add(feature)
    os.umask(0o077)
    # Reported only where the step worked and the kernel confirms it.
    in_force = in_force_now(plan) & applied
    missing = plan.features - in_force
    if plan.require and missing:
        raise SandboxFailure(f"not in force: {', '.join(sorted(missing))}")
    return in_force


def _skip(plan: Plan, feature: Feature, why: str) -> None:
    if plan.require:
        raise SandboxFailure(f"{feature}: {why}")
    log.warning("sandbox: %s is not in force: %s", feature, why)


# What the kernel says ------------------------------------------------------------------


def in_force_now(plan: Plan) -> frozenset[Feature]:
    """The planned features that this process is actually held to, asked of the kernel."""
    checks: dict[Feature, Callable[[Plan], bool]] = {
        Feature.UID: _has_uid,
        Feature.RLIMITS: _has_rlimits,
        Feature.CGROUP: _has_cgroup,
        Feature.NETNS: _has_no_network,
        Feature.FS_VIEW: _has_view,
        Feature.LANDLOCK: _has_landlock,
        Feature.SECCOMP: lambda plan: _status_field("Seccomp") == "2",
        Feature.NO_NEW_PRIVS: lambda plan: _status_field("NoNewPrivs") == "1",
        Feature.NO_DUMP: lambda plan: _prctl(_PR_GET_DUMPABLE, 0) == 0,
    }
    return frozenset(f for f in plan.features if checks[f](plan))


def _status_field(name: str) -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return ""


def _has_uid(plan: Plan) -> bool:
    ids = {plan.uid}
    return (
        bool(plan.uid)
        and set(os.getresuid()) == ids == set(os.getresgid())
        and not (os.getgroups())
    )


def _has_rlimits(plan: Plan) -> bool:
    return all(
        resource.getrlimit(getattr(resource, name)) == (soft, hard)
        for name, soft, hard in plan.rlimits
    )


def _has_cgroup(plan: Plan) -> bool:
    assert plan.cgroup_procs is not None
    name = Path(plan.cgroup_procs).parent.name
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    return any(
        line.split(":", 2)[2].rstrip("/").endswith("/" + name)
        for line in lines
        if line.split(":", 2)[1] in ("memory", "")
    )


def _has_no_network(plan: Plan) -> bool:
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return [line.split(":", 1)[0].strip() for line in lines] == ["lo"]


def _has_view(plan: Plan) -> bool:
    covered = [e.over for e in plan.expose] + [p for p in plan.hide if os.path.lexists(p)]
    return all(os.path.ismount(p) for p in covered)


def _has_landlock(plan: Plan) -> bool:
    # Nothing grants reading the root directory itself, so only Landlock can refuse it.
    try:
        os.listdir("/")
    except PermissionError:
        return True
    return False


# Entry point ---------------------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    """Confine this process by argv[0] (a plan), then run argv[1] with argv[2:]."""
    # First of all: die with the supervisor, whatever happens to it from now on.
    lineage.die_with_supervisor()
    # The worker's own format, so that its later basicConfig changes nothing.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if len(argv) < 2:
        log.error("usage: python -m bulkhead.runtime.sandbox PLAN MODULE [ARG...]")
        return 2
    plan, module = Plan.from_json(argv[0]), argv[1]
    try:
        in_force = apply(plan)
    except SandboxFailure as exc:
        log.error("Refusing to start: the sandbox is incomplete (%s).", exc)
        return EXIT_REFUSED
    lineage.die_with_supervisor()  # re-armed after every credential change, re-checked
    print("SANDBOX " + ",".join(sorted(in_force)), flush=True)
    sys.argv = [module, *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0
