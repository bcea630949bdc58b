"""The hashes of the audit Merkle tree: RFC 6962 §2.1, restated as RFC 9162 §2.1.1.

Leaves and interior nodes are hashed with different one-byte prefixes so that a
leaf can never be passed off as an interior node (second-preimage resistance).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

HASH_SIZE = 32
"""The length in bytes of every hash in the tree (SHA-256)."""

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() — the root of the tree with no leaves (RFC 9162 §2.1.1)."""


def leaf_hash(data: bytes) -> bytes:
    """Returns MTH({d(0)}) = SHA-256(0x00 || d(0)), the hash of one entry (RFC 9162 §2.1.1)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """Returns the leaf hash of every entry, in order, without a Python call per entry."""
    # One comprehension around the C-level hash keeps large exports fast.
    sha256 = hashlib.sha256
    return [sha256(LEAF_PREFIX + entry).digest() for entry in entries]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Returns SHA-256(0x01 || left || right), an interior node (RFC 9162 §2.1.1)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()
