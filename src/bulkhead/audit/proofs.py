"""Verifying Merkle inclusion and consistency proofs, exactly as RFC 9162 §2.1 states.

This module is the verifier's half of the tree: it imports only the standard
library and `bulkhead.audit.hashing`, never the builder or storage, so an
exported log can be checked with nothing else.  Every check raises
`VerificationError` with the precise reason; none returns a bool.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from bulkhead.audit.hashing import HASH_SIZE, node_hash


class VerificationError(ValueError):
    """A proof, signature, checkpoint or log did not verify; the message says why."""


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves with `root`."""
    _require_hash("root hash", root)
    computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    # RFC 9162 §2.1.3.2 step 5: compare r against the root_hash.
    if not hmac.compare_digest(computed, root):
        raise VerificationError("inclusion proof leads to a different root hash")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Returns the root hash that an inclusion proof implies (RFC 9162 §2.1.3.2, steps 1-5)."""
    # A hash of the wrong length is no SHA-256 node; without this check an
    # empty leaf hash would "prove" itself as the root of an empty proof.
    _require_hash("leaf hash", leaf_hash)
    _require_path("inclusion", proof)
    # Step 1: if leaf_index is greater than or equal to tree_size, fail.
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is not in a tree of size {size}")
    # Steps 2 and 3: set fn to leaf_index, sn to tree_size - 1 and r to hash.
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        fn, sn, r = _inclusion_step(fn, sn, r, p)
    # Step 5: sn must have reached 0, or the proof was too short for the tree.
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the path to the root")
    return r


def _inclusion_step(fn: int, sn: int, r: bytes, p: bytes) -> tuple[int, int, bytes]:
    """One iteration of RFC 9162 §2.1.3.2 step 4 for the path value p."""
    # Step 4: if sn is 0, stop the iteration and fail.
    if sn == 0:
        raise VerificationError("inclusion proof is longer than the path to the root")
    if fn & 1 or fn == sn:
        # Step 4: if LSB(fn) is set or fn equals sn, r = HASH(0x01 || p || r); then
        # fn and sn shift right until LSB(fn) is set or fn is 0, skipping the
        # levels where this node is a left child with no right sibling.
        r = node_hash(p, r)
        while not fn & 1 and fn != 0:
            fn, sn = fn >> 1, sn >> 1
    else:
        # Step 4: otherwise r = HASH(0x01 || r || p).
        r = node_hash(r, p)
    # Step 4: finally, right-shift both fn and sn one time.
    return fn >> 1, sn >> 1, r


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Checks that the tree (`new_size`, `new_root`) extends (`old_size`, `old_root`)."""
    _check_sizes(old_size, new_size)
    if old_size == new_size:
        _verify_same_tree(proof, old_root, new_root)
        return
    _require_hash("first root hash", old_root)
    _require_hash("second root hash", new_root)
    _require_path("consistency", proof)
    fr, sr, sn = _chain_consistency(old_size, new_size, proof, old_root)
    # RFC 9162 §2.1.4.2 step 7: fr must equal first_hash, sr second_hash, and sn must be 0.
    if sn != 0:
        raise VerificationError("consistency proof is shorter than the path to the new root")
    if not hmac.compare_digest(fr, old_root):
        raise VerificationError("consistency proof does not lead to the first root hash")
    if not hmac.compare_digest(sr, new_root):
        raise VerificationError("consistency proof does not lead to the second root hash")


def _check_sizes(old_size: int, new_size: int) -> None:
    # RFC 9162 §2.1.4 defines consistency between a first tree of 0 < m leaves
    # and a second of n >= m leaves; a tree cannot shrink, and every tree
    # trivially extends the empty one, so a proof from size 0 proves nothing.
    if old_size > new_size:
        raise VerificationError(f"tree shrank from size {old_size} to size {new_size}")
    if old_size <= 0:
        raise VerificationError("a consistency proof from the empty tree is meaningless")


def _verify_same_tree(proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> None:
    # Two tree heads of equal size are consistent only if they are the same
    # tree; there is nothing between them to prove (RFC 9162 §2.1.4.1, PROOF(n, D[n]) = {}).
    if proof:
        raise VerificationError("trees of equal size need an empty consistency proof")
    if not hmac.compare_digest(old_root, new_root):
        raise VerificationError("trees of equal size have different root hashes")


def _chain_consistency(
    first: int, second: int, proof: Sequence[bytes], first_hash: bytes
) -> tuple[bytes, bytes, int]:
    """RFC 9162 §2.1.4.2 steps 1-6; returns (fr, sr, sn) for the checks of step 7."""
    # Step 1: if consistency_path is an empty array, fail.
    if not proof:
        raise VerificationError("consistency proof is empty")
    # Step 2: if first is an exact power of 2, prepend first_hash to consistency_path.
    path = [first_hash, *proof] if first & (first - 1) == 0 else list(proof)
    # Step 3: set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # Step 4: if LSB(fn) is set, right-shift fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # Step 5: set both fr and sr to the first value in consistency_path.
    fr = sr = path[0]
    # Step 6: fold in each subsequent value c.
    for c in path[1:]:
        fn, sn, fr, sr = _consistency_step(fn, sn, fr, sr, c)
    return fr, sr, sn


def _consistency_step(
    fn: int, sn: int, fr: bytes, sr: bytes, c: bytes
) -> tuple[int, int, bytes, bytes]:
    """One iteration of RFC 9162 §2.1.4.2 step 6 for the path value c."""
    # Step 6: if sn is 0, stop the iteration and fail.
    if sn == 0:
        raise VerificationError("consistency proof is longer than the path to the new root")
    if fn & 1 or fn == sn:
        # Step 6: if LSB(fn) is set or fn equals sn, fr = HASH(0x01 || c || fr) and
        # sr = HASH(0x01 || c || sr); then fn and sn shift right until LSB(fn) is
        # set or fn is 0.
        fr, sr = node_hash(c, fr), node_hash(c, sr)
        while not fn & 1 and fn != 0:
            fn, sn = fn >> 1, sn >> 1
    else:
        # Step 6: otherwise sr = HASH(0x01 || sr || c); this node is not in the first tree.
        sr = node_hash(sr, c)
    # Step 6: finally, right-shift both fn and sn one time.
    return fn >> 1, sn >> 1, fr, sr


def _require_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def _require_path(kind: str, proof: Sequence[bytes]) -> None:
    for position, value in enumerate(proof):
        _require_hash(f"{kind} proof element {position}", value)
