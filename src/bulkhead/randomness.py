"""Random hex ids from the OS's generator, fetched in blocks rather than one system call each.

Each request takes three such ids (its request id, its audit event's id, the
input guard's canary), and a `getrandom` call costs about 12 µs on the VMs
Bulkhead is benchmarked on: a 4 KiB block per thread serves about 250 ids a
call.  The bytes are `os.urandom`'s, used once each, so the ids are as
unpredictable as before.  Blocks are per thread (no two threads hand out the
same bytes, no lock), and a forked child drops the block it inherited, or
parent and child would hand out the same ids.
"""

from __future__ import annotations

import os
import threading

BLOCK_BYTES = 4096


class _Blocks(threading.local):
    def __init__(self) -> None:
        self.block, self.at = b"", 0


_blocks = _Blocks()


def _forget() -> None:  # in a forked child: its one thread's inherited block is its parent's
    _blocks.block, _blocks.at = b"", 0


os.register_at_fork(after_in_child=_forget)


def random_bytes(n: int) -> bytes:
    """`n` bytes (at most `BLOCK_BYTES`) from the OS's cryptographic generator, never reused."""
    if not 0 < n <= BLOCK_BYTES:
        raise ValueError(f"random_bytes takes 1 to {BLOCK_BYTES} bytes")
    blocks = _blocks
    at = blocks.at
    if at + n > len(blocks.block):
        blocks.block, at = os.urandom(BLOCK_BYTES), 0
    blocks.at = at + n
    return blocks.block[at : at + n]


def random_hex(n: int) -> str:
    """`n` random bytes as 2n lower-case hex digits."""
    return random_bytes(n).hex()
