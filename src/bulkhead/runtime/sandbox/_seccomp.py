"""The worker's seccomp filter: a deny list of the system calls a model server never needs.

Denied calls fail with EPERM (or ENOSYS, where the C library should fall back to an
older call) instead of killing the process, so that an attempt shows up as an ordinary
error in the worker's log and in the escape tests.  Calls made for another architecture
(32-bit x86 from a 64-bit process, say) kill the process: libseccomp's default for a
foreign architecture.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Final

DENIED: Final = (
    # Another process's memory and execution.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    # Running anything else once the worker has started.
    "execve",
    "execveat",
    # The filesystem and namespaces it sees.
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    # The kernel itself.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
)
# clone3 passes its flags in memory that seccomp cannot read; ENOSYS makes the C
# library fall back to clone, whose flags are checked below.  io_uring would let a
# worker make sockets and open files without any of the calls this filter sees.
NOT_IMPLEMENTED: Final = ("clone3", "io_uring_setup", "io_uring_enter", "io_uring_register")
NAMESPACE_FLAGS: Final = (
    0x00000080,  # CLONE_NEWTIME
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


def preload() -> None:
    """Load libseccomp now: finding it runs ldconfig, which Landlock later forbids."""
    import pyseccomp  # noqa: F401


def install() -> None:
    """Load the filter into this process (no_new_privs must already be set)."""
    import pyseccomp as seccomp  # Loaded only by the sandboxed process itself.

    refuse, absent = seccomp.ERRNO(errno.EPERM), seccomp.ERRNO(errno.ENOSYS)
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    # Every thread of the process, not only the calling one, gets the filter.
    rules.set_attr(seccomp.Attr.CTL_TSYNC, 1)
    with contextlib.suppress(OSError):
        # A binary search over syscall numbers instead of a linear scan (libseccomp 2.5+).
        rules.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)
    for name in DENIED:
        rules.add_rule(refuse, name)
    for name in NOT_IMPLEMENTED:
        rules.add_rule(absent, name)
    # Only Unix sockets: no internet, raw packet, netlink, vsock or any other family.
    rules.add_rule(refuse, "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.load()
