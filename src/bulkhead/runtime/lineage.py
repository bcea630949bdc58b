"""Workers die with their gateway: the kernel's parent-death signal, and a ledger of workers.

A gateway that dies without closing its workers (kill -9, a segfault in a native
library) must not leave them serving, re-parented to init, holding a tenant's
decrypted weights (issue 12, item 28).  Two mechanisms, each covering the other:

- In the worker (`die_with_supervisor`), before anything else: PR_SET_PDEATHSIG
  makes the kernel SIGKILL it when its parent dies.  The signal is tied to the
  *thread* that forked the worker, which is the gateway's event-loop thread: it
  lives as long as the gateway serves.  A worker whose parent died before the
  signal was armed is already re-parented, so it compares its parent with the
  supervisor's pid (`SUPERVISOR_ENV`) and exits.  Changing the effective uid
  clears the setting, so the sandbox arms it again right after dropping its uid.
- In the gateway (`WorkerLedger`): every running worker is recorded in the data
  dir (pid and start time, its cgroup, its directory) under the supervisor's own
  pid and start time.  A gateway starting on that data dir kills whatever the
  records of a supervisor that no longer runs still name, empties and removes
  their cgroups, and deletes their directories.  Processes are matched by pid
  *and* start time, so a recycled pid is never hit; records of a supervisor that
  still runs (a replica on the same data dir) and workers of another data dir
  (another Bulkhead on this machine) are never touched.

The worker side uses the standard library only: it runs before the sandbox.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bulkhead.runtime.sandbox import WorkerCgroup

log = logging.getLogger("bulkhead.workers")

SUPERVISOR_ENV: Final = "BULKHEAD_SUPERVISOR_PID"
EXIT_ORPHANED: Final = 4
_PR_SET_PDEATHSIG: Final = 1
_PR_GET_PDEATHSIG: Final = 2
WORKERS_DIR_PREFIX: Final = "bulkhead-workers-"
CGROUP_PREFIX: Final = "bulkhead-"
_CGROUP_ROOT: Final = Path("/sys/fs/cgroup")


# The worker's side ---------------------------------------------------------------------


def die_with_supervisor() -> None:
    """Be SIGKILLed when the supervisor dies; exit at once if it already has.

    Does nothing for a process not started by a supervisor (no `SUPERVISOR_ENV`).
    """
    expected = os.environ.get(SUPERVISOR_ENV, "")
    if not expected.isdigit():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    # Checked after arming: a parent that dies from here on sends the signal.
    if os.getppid() != int(expected):
        os._exit(EXIT_ORPHANED)


def armed() -> bool:
    """Whether this process has a parent-death signal set (for the sandbox's report)."""
    value = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0) != 0:
        return False
    return value.value == signal.SIGKILL


# Identities of processes ---------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None when it does not run.

    A zombie counts as gone: it runs no code, and only its parent can reap it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(pid: int, started: int) -> bool:
    return pid > 1 and start_time(pid) == started


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


# The supervisor's side -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    pid: int
    start: int
    cgroup: str | None = None  # its memory cgroup, which its children are in too
    cgroup_version: int = 0


class WorkerLedger:
    """Records this supervisor's workers in `directory`; reaps those of dead supervisors."""

    def __init__(self, directory: Path, workers_dir: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pid = os.getpid()
        self.start = start_time(self.pid) or 0
        self.host, self.boot = socket.gethostname(), boot_id()
        self.workers_dir = workers_dir
        self.path = directory / f"{self.boot}-{self.pid}-{self.start}.json"
        self._workers: dict[str, WorkerRecord] = {}

    def started(self, key: str, pid: int, cgroup: WorkerCgroup | None = None) -> None:
        started = start_time(pid)
        if started is not None:
            path, version = (str(cgroup.path), cgroup.version) if cgroup else (None, 0)
            self._workers[key] = WorkerRecord(pid, started, path, version)
            self._save()

    def ended(self, key: str) -> None:
        if self._workers.pop(key, None) is not None:
            self._save()

    def close(self) -> None:
        self._workers.clear()
        self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        document = {
            "host": self.host,
            "boot": self.boot,
            "supervisor": {"pid": self.pid, "start": self.start},
            "workers_dir": str(self.workers_dir),
            "workers": {k: asdict(r) for k, r in self._workers.items()},
        }
        temp = self.path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(document, out)
        os.replace(temp, self.path)

    def reap_orphans(self) -> int:
        """Kill and clean up after the workers of supervisors that no longer run; how many."""
        killed = 0
        for path in sorted(self.directory.glob("*.json")):
            if path == self.path:
                continue
            try:
                document = json.loads(path.read_text())
                killed += self._reap(path, document)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("cannot read the worker record %s: %s", path.name, exc)
        return killed

    def _reap(self, path: Path, document: dict[str, object]) -> int:
        supervisor = document["supervisor"]
        assert isinstance(supervisor, dict)
        if document["host"] != self.host:
            return 0  # another machine sharing the data dir: its workers are its own
        same_boot = document["boot"] == self.boot
        if same_boot and alive(int(supervisor["pid"]), int(supervisor["start"])):
            return 0  # a replica on this data dir that still runs
        records = document["workers"]
        assert isinstance(records, dict)
        killed = sum(_kill(WorkerRecord(**r)) for r in records.values()) if same_boot else 0
        for record in records.values():
            _remove_cgroup(WorkerRecord(**record))
        _remove_workers_dir(str(document.get("workers_dir", "")))
        path.unlink(missing_ok=True)
        if killed:
            log.warning("killed %d orphaned worker(s) of a gateway that died", killed)
        return killed


def _kill(record: WorkerRecord) -> int:
    """SIGKILL the worker and its process group, if it is still the same process."""
    if not alive(record.pid, record.start):
        return 0
    # The worker leads its own session (start_new_session), so its group is its own.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(record.pid, signal.SIGKILL)
    return 1


def _remove_cgroup(record: WorkerRecord) -> None:
    """Kill what is left in a worker's cgroup (its children too) and remove the cgroup."""
    if not record.cgroup:
        return
    path = Path(record.cgroup)
    if not (path.is_relative_to(_CGROUP_ROOT) and path.name.startswith(CGROUP_PREFIX)):
        return  # only a worker cgroup the sandbox made is ever touched
    from bulkhead.runtime.sandbox import WorkerCgroup  # not needed by the worker's side

    if path.is_dir():
        try:
            WorkerCgroup(path, record.cgroup_version).remove()
        except OSError as exc:
            log.warning("an orphaned worker cgroup %s stays behind: %s", path, exc)


def _remove_workers_dir(path: str) -> None:
    directory = Path(path)
    if directory.parent == Path(tempfile.gettempdir()) and directory.name.startswith(
        WORKERS_DIR_PREFIX
    ):
        shutil.rmtree(directory, ignore_errors=True)
