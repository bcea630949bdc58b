"""RFC 6962 / RFC 9162 Merkle tree vectors, and the tree builder against a reference.

The inclusion and consistency cases are transparency-dev/merkle's `testdata`,
read from the shared vectors folder next to the repository; a missing folder
fails `test_the_vector_folders_are_all_there` rather than passing silently.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.audit.hashing import EMPTY_ROOT, leaf_hash, node_hash
from bulkhead.audit.proofs import (
    VerificationError,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from bulkhead.audit.tree import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    root,
)

TESTDATA = (
    Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "rfc6962" / "testdata"
)

# The reference tree behind the numbered folders, and its root at every size,
# from certificate-transparency's merkle_tree_test.cc (kInputs, kSHA256Roots).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
CT_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip


def _cases(kind: str) -> list[Any]:
    paths = sorted((TESTDATA / kind).rglob("*.json"))
    return [pytest.param(path, id=str(path.relative_to(TESTDATA / kind))) for path in paths]


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in case["proof"] or []]


def test_the_vector_folders_are_all_there() -> None:
    # A missing folder fails here (the parametrised cases then have nothing to
    # run); counts are those of transparency-dev/merkle 417fb0c.
    assert TESTDATA.is_dir(), f"RFC 6962 vectors are missing: expected them at {TESTDATA}"
    assert len(_cases("inclusion")) == 98
    assert len(_cases("consistency")) == 98


@pytest.mark.parametrize("path", _cases("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    case = _load(path)
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), _proof(case))
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args, _b64(case["root"]))
    else:
        verify_inclusion(*args, _b64(case["root"]))
        assert root_from_inclusion_proof(*args) == _b64(case["root"])


@pytest.mark.parametrize("path", _cases("consistency"))
def test_consistency_vector(path: Path) -> None:
    case = _load(path)
    args = (case["size1"], case["size2"], _proof(case), _b64(case["root1"]), _b64(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_empty_tree_root() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == root([])
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_tree_roots(size: int) -> None:
    hashes = [leaf_hash(leaf) for leaf in CT_LEAVES[:size]]
    assert root(hashes) == CT_ROOTS[size - 1] == _reference_root(hashes)
    tree = CompactRange()
    for leaf in hashes:
        tree.append(leaf)
    assert tree.root() == CT_ROOTS[size - 1]


def test_reference_tree_hashes() -> None:
    # RFC 9162 §2.1.1: the leaf and node prefixes, on known values.
    assert leaf_hash(b"") == CT_ROOTS[0]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == CT_ROOTS[1]


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_tree_proofs_verify(size: int) -> None:
    hashes = [leaf_hash(leaf) for leaf in CT_LEAVES]
    for index in range(size):
        proof = inclusion_proof(hashes, index, size)
        verify_inclusion(index, size, hashes[index], proof, CT_ROOTS[size - 1])
    for old in range(1, size + 1):
        proof = consistency_proof(hashes, old, size)
        verify_consistency(old, size, proof, CT_ROOTS[old - 1], CT_ROOTS[size - 1])


def test_known_proofs_of_the_reference_tree() -> None:
    # The first happy paths of inclusion/1 and consistency/1, generated by tree.py.
    hashes = [leaf_hash(leaf) for leaf in CT_LEAVES]
    case = _load(TESTDATA / "inclusion" / "1" / "happy-path.json")
    assert inclusion_proof(hashes, case["leafIdx"], case["treeSize"]) == _proof(case)
    case = _load(TESTDATA / "consistency" / "1" / "happy-path.json")
    assert consistency_proof(hashes, case["size1"], case["size2"]) == _proof(case)


@pytest.mark.parametrize("folder", ["1", "2", "3", "4"])
def test_tree_generates_the_vector_proofs(folder: str) -> None:
    hashes = [leaf_hash(leaf) for leaf in CT_LEAVES]
    inclusion = _load(TESTDATA / "inclusion" / folder / "happy-path.json")
    want = _proof(inclusion)
    assert inclusion_proof(hashes, inclusion["leafIdx"], inclusion["treeSize"]) == want
    consistency = _load(TESTDATA / "consistency" / folder / "happy-path.json")
    want = _proof(consistency)
    assert consistency_proof(hashes, consistency["size1"], consistency["size2"]) == want


# A plain reference implementation, written straight from RFC 9162 §2.1 with
# list slices, to cross-check the builder's offsets, compact range and blocks.


def _reference_root(d: list[bytes]) -> bytes:
    if not d:
        return EMPTY_ROOT
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return node_hash(_reference_root(d[:k]), _reference_root(d[k:]))


def _reference_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*_reference_path(m, d[:k]), _reference_root(d[k:])]
    return [*_reference_path(m - k, d[k:]), _reference_root(d[:k])]


def _reference_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [_reference_root(d)]
    k = _k(len(d))
    if m <= k:
        return [*_reference_subproof(m, d[:k], b), _reference_root(d[k:])]
    return [*_reference_subproof(m - k, d[k:], False), _reference_root(d[:k])]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _leaves(size: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 200), st.data())
def test_inclusion_proofs_match_the_reference(size: int, data: st.DataObject) -> None:
    hashes = _leaves(size)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(hashes, index, size)
    assert proof == _reference_path(index, hashes)
    assert root(hashes) == _reference_root(hashes)
    verify_inclusion(index, size, hashes[index], proof, _reference_root(hashes))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 200), st.data())
def test_consistency_proofs_match_the_reference(size: int, data: st.DataObject) -> None:
    hashes = _leaves(size)
    old = data.draw(st.integers(1, size), label="old size")
    proof = consistency_proof(hashes, old, size)
    assert proof == (_reference_subproof(old, hashes, True) if old < size else [])
    verify_consistency(old, size, proof, _reference_root(hashes[:old]), _reference_root(hashes))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 70), max_size=8))
def test_compact_range_matches_the_reference(batches: list[int]) -> None:
    hashes = _leaves(sum(batches))
    tree, start = CompactRange(), 0
    for count in batches:
        tree.extend(hashes[start : start + count])
        start += count
        assert tree.size == start
        assert tree.root() == _reference_root(hashes[:start])
        restored = CompactRange.from_border(tree.size, tree.hashes)
        assert restored.root() == tree.root()


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 64), st.data())
def test_wrong_proofs_fail(size: int, data: st.DataObject) -> None:
    hashes = _leaves(size)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(hashes, index, size)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
    with pytest.raises(VerificationError):
        verify_inclusion(other, size, hashes[index], proof, root(hashes))
    old = data.draw(st.integers(1, size - 1), label="old size")
    proof = consistency_proof(hashes, old, size)
    with pytest.raises(VerificationError):
        verify_consistency(
            old, size, proof, root(hashes[: old - 1] + hashes[old : old + 1]), root(hashes)
        )


def test_large_tree_against_the_reference() -> None:
    # Past one 2**16 block of CompactRange.extend, at an unaligned size.
    hashes = _leaves(70_001)
    assert root(hashes) == _reference_root(hashes)
    index = 65_537
    verify_inclusion(
        index, len(hashes), hashes[index], inclusion_proof(hashes, index, 70_001), root(hashes)
    )
