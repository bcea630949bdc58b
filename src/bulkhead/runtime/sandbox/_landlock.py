"""A small ctypes binding to Landlock, the unprivileged Linux filesystem sandbox.

Landlock is an allow-list: once a process restricts itself, it (and every thread and
child it makes afterwards) can reach only the paths a rule names, with only the rights
the rule grants, and nothing can lift the restriction.  The rights a ruleset "handles"
depend on the kernel's Landlock ABI version, so the ruleset is built from what the
running kernel says it supports (Documentation/userspace-api/landlock.rst).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_SYS_CREATE_RULESET: Final = 444
_SYS_ADD_RULE: Final = 445
_SYS_RESTRICT_SELF: Final = 446
_CREATE_RULESET_VERSION: Final = 1
_RULE_PATH_BENEATH: Final = 1

# Filesystem rights, by the ABI that introduced them.
EXECUTE: Final = 1 << 0
WRITE_FILE: Final = 1 << 1
READ_FILE: Final = 1 << 2
READ_DIR: Final = 1 << 3
_ABI1_ALL: Final = (1 << 13) - 1  # execute .. make_sym
REFER: Final = 1 << 13  # ABI 2
TRUNCATE: Final = 1 << 14  # ABI 3
IOCTL_DEV: Final = 1 << 15  # ABI 5
_FILE_ONLY: Final = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
# ABI 4: TCP bind and connect; handled with no rule, both are refused.
_NET_BIND_TCP: Final = 1 << 0
_NET_CONNECT_TCP: Final = 1 << 1
# ABI 6: no connecting to abstract Unix sockets, nor signalling, outside the domain.
_SCOPE_ABSTRACT_UNIX: Final = 1 << 0
_SCOPE_SIGNAL: Final = 1 << 1

READ: Final = READ_FILE | READ_DIR


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed: 12 bytes
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 where Landlock is missing or turned off."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    version = int(libc.syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION))
    return max(version, 0)


def handled_fs(abi: int) -> int:
    """Every filesystem right that `abi` knows, so that none is left unrestricted."""
    rights = _ABI1_ALL
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


@dataclass(frozen=True, slots=True)
class Rule:
    """`rights` beneath `path` (a directory) or on it (a file)."""

    path: Path
    rights: int


def restrict_self(rules: Iterable[Rule], abi: int) -> None:
    """Confine this process to `rules`; raises OSError if the kernel refuses.

    The caller must have set no_new_privs first.  A rule whose path does not exist is
    skipped: there is nothing beneath it to allow.
    """
    if abi < 1:
        raise OSError("Landlock is not available in this kernel")
    handled = handled_fs(abi)
    ruleset = _create_ruleset(handled, abi)
    try:
        for rule in rules:
            _add_rule(ruleset, rule, handled)
        libc = _libc()
        libc.syscall.restype = ctypes.c_long
        _check(libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _create_ruleset(handled: int, abi: int) -> int:
    attr = _RulesetAttr(handled, 0, 0)
    size = 8
    if abi >= 4:
        attr.handled_access_net, size = _NET_BIND_TCP | _NET_CONNECT_TCP, 16
    if abi >= 6:
        attr.scoped, size = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL, 24
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    _check(fd, "landlock_create_ruleset")
    return int(fd)


def _add_rule(ruleset: int, rule: Rule, handled: int) -> None:
    try:
        fd = os.open(rule.path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        rights = rule.rights & handled
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            rights &= _FILE_ONLY
        attr = _PathBeneathAttr(rights, fd)
        libc = _libc()
        libc.syscall.restype = ctypes.c_long
        result = libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(attr), 0)
        _check(result, f"landlock_add_rule({rule.path})")
    finally:
        os.close(fd)


def _check(result: int, what: str) -> None:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def writable(abi: int) -> int:
    """Full use of a directory tree, except executing what is in it."""
    return handled_fs(abi) & ~EXECUTE
