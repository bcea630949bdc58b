"""Building the audit Merkle tree: roots, an incremental compact range, and proofs.

Everything here follows RFC 9162 §2.1 (the same tree as RFC 6962 §2.1).  This
module only *builds*; `bulkhead.audit.proofs` verifies, and shares nothing with
it but the hash functions, so that a bug here cannot hide a bug there.

Proofs are generated from a `SubtreeHash` callable that returns the hash of any
perfect, aligned subtree.  `memory_subtrees` answers it from a list of leaf
hashes, building every level once; `block_subtrees` from cached roots of
fixed-size blocks and the leaves of the one or two blocks a proof touches.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Sequence

from bulkhead.audit.hashing import EMPTY_ROOT, HASH_SIZE, NODE_PREFIX, node_hash

SubtreeHash = Callable[[int, int], bytes]
"""`subtree_hash(start, end)` returns MTH(D[start:end]) of a perfect subtree.

It is only ever asked for ranges whose width `end - start` is a power of two
and whose `start` is a multiple of that width: the nodes that exist in every
tree that contains the range.
"""

_MAX_BLOCK_HEIGHT = 16
"""The largest perfect subtree (2**16 leaves) that `CompactRange.extend` hashes in one go."""


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Returns MTH(D[n]) of RFC 9162 §2.1.1 over the given leaf hashes."""
    tree = CompactRange()
    tree.extend(leaf_hashes)
    return tree.root()


def memory_subtrees(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    """Returns a `SubtreeHash` over `leaf_hashes`, building every tree level once, on first use.

    Any number of proofs then costs O(n) hashing in all (2n hashes) plus
    O(log n) lookups each, instead of O(n) hashing per proof.
    """
    built: list[list[bytes]] = []

    def subtree_hash(start: int, end: int) -> bytes:
        _check_perfect(start, end)
        if end > len(leaf_hashes):
            raise ValueError(f"subtree [{start}, {end}) is beyond {len(leaf_hashes)} leaves")
        if not built:
            built.extend(levels(leaf_hashes))
        height = (end - start).bit_length() - 1
        return built[height][start >> height]

    return subtree_hash


def levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Returns every level of perfect subtrees: `levels[h][i]` = MTH(D[i * 2**h : (i + 1) * 2**h]).

    Level h holds only the subtrees that are complete within the leaves
    (RFC 9162 §2.1.1 splits every tree into such subtrees); 2n hashes in all.
    """
    sha256 = hashlib.sha256
    out = [list(leaf_hashes)]
    while len(out[-1]) > 1:
        # zip drops an odd last node: its subtree is not complete at this level.
        pairs = iter(out[-1])
        pairwise = zip(pairs, pairs, strict=False)
        out.append([sha256(NODE_PREFIX + left + right).digest() for left, right in pairwise])
    return out


def block_subtrees(
    roots: Sequence[bytes], block: int, leaves: Callable[[int], Sequence[bytes]]
) -> SubtreeHash:
    """Returns a `SubtreeHash` from cached roots of full blocks of `block` leaves.

    `roots[i]` is MTH of leaves [i * block, (i + 1) * block); `leaves(i)` returns
    the leaf hashes of block i (the last one may be partial).  One proof then
    reads at most two blocks of leaves (the leaf's own and the tree's last)
    and hashes O(n / block) cached roots, instead of every leaf of the log.
    """
    _check_perfect(0, block)

    def subtree_hash(start: int, end: int) -> bytes:
        _check_perfect(start, end)
        if end - start >= block:
            if end // block > len(roots):
                raise ValueError(f"subtree [{start}, {end}) is beyond the cached blocks")
            return _perfect_root(roots[start // block : end // block])
        number = start // block
        found = leaves(number)
        offset = number * block
        if end - offset > len(found):
            raise ValueError(f"subtree [{start}, {end}) is beyond block {number}'s leaves")
        return _perfect_root(found[start - offset : end - offset])

    return subtree_hash


def perfect_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Returns MTH of a power-of-two number of leaf hashes (one full block, for instance)."""
    _check_perfect(0, len(leaf_hashes))
    return _perfect_root(leaf_hashes)


class CompactRange:
    """The right border of a growing tree: appends in amortised O(1), roots in O(log n).

    `hashes` are the roots of the perfect subtrees that a tree of `size` leaves
    splits into under RFC 9162 §2.1.1 — one per set bit of `size`, the largest
    (leftmost) first.  Storage may persist them and rebuild with `from_border`.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_border(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Restores a compact range from a `size` and its border `hashes`."""
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {max(size, 0).bit_count()} border hashes")
        _check_hashes(hashes)
        border = cls()
        border._size, border._hashes = size, list(hashes)
        return border

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Adds one leaf hash at the right edge of the tree."""
        _check_hashes((leaf_hash,))
        self._push(leaf_hash, 0)

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        """Adds many leaf hashes, hashing aligned blocks level by level instead of leaf by leaf."""
        _check_hashes(leaf_hashes)
        start = 0
        while start < len(leaf_hashes):
            height = self._block_height(len(leaf_hashes) - start)
            end = start + (1 << height)
            self._push(_perfect_root(leaf_hashes[start:end]), height)
            start = end

    def root(self) -> bytes:
        """Returns MTH(D[size]): the border folded from the right (RFC 9162 §2.1.1)."""
        if not self._hashes:
            return EMPTY_ROOT
        result = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            result = node_hash(left, result)
        return result

    def _block_height(self, remaining: int) -> int:
        # A block can join the border only as a node that exists in the final
        # tree: it must fit in what remains and start at a multiple of its width.
        height = min(remaining.bit_length() - 1, _MAX_BLOCK_HEIGHT)
        if self._size:
            height = min(height, (self._size & -self._size).bit_length() - 1)
        return height

    def _push(self, subtree_hash: bytes, height: int) -> None:
        # Each trailing zero of the new size (counted from `height`) means two
        # neighbouring subtrees of equal height are now complete and merge.
        self._hashes.append(subtree_hash)
        self._size += 1 << height
        carry = self._size >> height
        while not carry & 1:
            right = self._hashes.pop()
            self._hashes.append(node_hash(self._hashes.pop(), right))
            carry >>= 1

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """Returns PATH(index, D[size]) over in-memory leaf hashes (RFC 9162 §2.1.3.1)."""
    _check_available(size, len(leaf_hashes))
    return inclusion_proof_from(memory_subtrees(leaf_hashes), index, size)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """Returns PROOF(old_size, D[new_size]) over in-memory leaf hashes (RFC 9162 §2.1.4.1)."""
    _check_available(new_size, len(leaf_hashes))
    return consistency_proof_from(memory_subtrees(leaf_hashes), old_size, new_size)


def inclusion_proof_from(subtree_hash: SubtreeHash, index: int, size: int) -> list[bytes]:
    """Returns PATH(index, D[size]) of RFC 9162 §2.1.3.1, bottom-up."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    return _path(subtree_hash, index, 0, size)


def inclusion_proofs(
    subtree_hash: SubtreeHash, indices: Iterable[int], size: int
) -> dict[int, list[bytes]]:
    """Returns PATH(m, D[size]) for every m in `indices`, computing each sibling once.

    The same paths as `inclusion_proof_from`, found in one walk down the tree:
    proofs of neighbouring leaves share their upper siblings, so k proofs cost
    O(k log n) steps instead of k separate descents.
    """
    wanted = sorted(set(indices))
    if wanted and not (wanted[0] >= 0 and wanted[-1] < size):
        raise ValueError(f"leaf indices must be in a tree of size {size}")
    paths: dict[int, list[bytes]] = {m: [] for m in wanted}
    _paths(subtree_hash, wanted, 0, size, paths)
    for path in paths.values():
        path.reverse()  # collected top-down; RFC 9162 lists them bottom-up
    return paths


def _paths(
    subtree_hash: SubtreeHash,
    wanted: list[int],
    start: int,
    end: int,
    paths: dict[int, list[bytes]],
) -> None:
    # The recursion of RFC 9162 §2.1.3.1 (see `_path`), for a sorted group of leaves at once.
    if end - start == 1 or not wanted:
        return
    k = _split(end - start)
    cut = bisect.bisect_left(wanted, start + k)
    left, right = wanted[:cut], wanted[cut:]
    if left:
        sibling = _range_hash(subtree_hash, start + k, end)
        for m in left:
            paths[m].append(sibling)
        _paths(subtree_hash, left, start, start + k, paths)
    if right:
        sibling = subtree_hash(start, start + k)
        for m in right:
            paths[m].append(sibling)
        _paths(subtree_hash, right, start + k, end, paths)


def consistency_proof_from(subtree_hash: SubtreeHash, old_size: int, new_size: int) -> list[bytes]:
    """Returns PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1, bottom-up."""
    # RFC 9162 §2.1.4.1 defines proofs for 0 < m <= n: from the empty tree
    # there is nothing to prove.
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    # PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
    return _subproof(subtree_hash, old_size, 0, new_size, True)


def _path(subtree_hash: SubtreeHash, m: int, start: int, end: int) -> list[bytes]:
    # RFC 9162 §2.1.3.1: the path to the only leaf of a one-leaf tree is empty.
    if end - start == 1:
        return []
    k = _split(end - start)
    if m < k:
        # For m < k: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]).
        sibling = _range_hash(subtree_hash, start + k, end)
        return [*_path(subtree_hash, m, start, start + k), sibling]
    # For m >= k: PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k]).
    return [*_path(subtree_hash, m - k, start + k, end), subtree_hash(start, start + k)]


def _subproof(subtree_hash: SubtreeHash, m: int, start: int, end: int, b: bool) -> list[bytes]:
    # RFC 9162 §2.1.4.1: SUBPROOF(m, D[m], true) = {} and SUBPROOF(m, D[m], false) = {MTH(D[m])}.
    if m == end - start:
        return [] if b else [_range_hash(subtree_hash, start, end)]
    k = _split(end - start)
    if m <= k:
        # For m <= k: SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n]).
        sibling = _range_hash(subtree_hash, start + k, end)
        return [*_subproof(subtree_hash, m, start, start + k, b), sibling]
    # For m > k: SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]).
    left = subtree_hash(start, start + k)
    return [*_subproof(subtree_hash, m - k, start + k, end, False), left]


def _range_hash(subtree_hash: SubtreeHash, start: int, end: int) -> bytes:
    """Returns MTH(D[start:end]) for a range produced by the RFC 9162 §2.1.1 recursion."""
    # Such a range starts at a multiple of a power of two at least as wide as
    # itself, so it is a run of perfect subtrees of decreasing width; each
    # split of §2.1.1 takes the widest one off the left.
    widths: list[tuple[int, int]] = []
    while start < end:
        width = 1 << ((end - start).bit_length() - 1)
        widths.append((start, start + width))
        start += width
    result = subtree_hash(*widths.pop())
    while widths:
        result = node_hash(subtree_hash(*widths.pop()), result)
    return result


def _perfect_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Returns MTH of a power-of-two number of leaf hashes, one tree level per pass."""
    # For n = 2**h every split of RFC 9162 §2.1.1 halves the range, so hashing
    # neighbours pairwise, level by level, yields the same nodes as the recursion.
    sha256 = hashlib.sha256
    level = list(leaf_hashes)
    while len(level) > 1:
        pairs = iter(level)
        level = [
            sha256(NODE_PREFIX + left + right).digest()
            for left, right in zip(pairs, pairs, strict=True)
        ]
    return level[0]


def _split(n: int) -> int:
    """Returns k, the largest power of two smaller than n > 1 (RFC 9162 §2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_perfect(start: int, end: int) -> None:
    width = end - start
    if start < 0 or width <= 0 or width & (width - 1) or start % width:
        raise ValueError(f"[{start}, {end}) is not a perfect, aligned subtree")


def _check_available(size: int, available: int) -> None:
    if size > available:
        raise ValueError(f"a tree of size {size} needs {size} leaf hashes, got {available}")


def _check_hashes(hashes: Sequence[bytes]) -> None:
    # map() keeps this check at C speed for million-leaf batches.
    if any(map(HASH_SIZE.__ne__, map(len, hashes))):
        raise ValueError(f"every leaf or node hash must be {HASH_SIZE} bytes")
