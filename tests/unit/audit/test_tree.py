"""The tree builder's batch helpers against the plain RFC 9162 reference.

`memory_subtrees` (levels built once), `inclusion_proofs` (many paths in one
walk) and `block_subtrees` (cached block roots) must give exactly the paths
that the reference recursion of RFC 9162 §2.1.3.1 gives.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.audit.tree import (
    block_subtrees,
    inclusion_proof_from,
    inclusion_proofs,
    levels,
    memory_subtrees,
    perfect_root,
)
from tests.vectors.test_rfc6962 import _leaves, _reference_path, _reference_root


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 300))
def test_levels_hold_every_complete_subtree(size: int) -> None:
    hashes = _leaves(size)
    for height, level in enumerate(levels(hashes)):
        width = 1 << height
        assert len(level) == size // width
        for i, node in enumerate(level):
            assert node == _reference_root(hashes[i * width : (i + 1) * width])


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 300), st.data())
def test_inclusion_proofs_match_the_reference(size: int, data: st.DataObject) -> None:
    hashes = _leaves(size)
    wanted = data.draw(st.sets(st.integers(0, size - 1), max_size=40), label="indices")
    paths = inclusion_proofs(memory_subtrees(hashes), wanted, size)
    assert set(paths) == wanted
    for m, path in paths.items():
        assert path == _reference_path(m, hashes)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 300), st.sampled_from([1, 2, 4, 8, 16]), st.data())
def test_block_subtrees_match_the_reference(size: int, block: int, data: st.DataObject) -> None:
    hashes = _leaves(size)
    roots = [perfect_root(hashes[i : i + block]) for i in range(0, size - block + 1, block)]
    read: list[int] = []

    def leaves(number: int) -> list[bytes]:
        read.append(number)
        return hashes[number * block : (number + 1) * block]

    index = data.draw(st.integers(0, size - 1), label="index")
    subtrees = block_subtrees(roots[: size // block], block, leaves)
    assert inclusion_proof_from(subtrees, index, size) == _reference_path(index, hashes)
    # At most the leaf's own block and the last, partial one are read.
    assert set(read) <= {index // block, size // block}


def test_out_of_range_indices_are_refused() -> None:
    with pytest.raises(ValueError):
        inclusion_proofs(memory_subtrees(_leaves(4)), [4], 4)
    with pytest.raises(ValueError):
        perfect_root(_leaves(3))
