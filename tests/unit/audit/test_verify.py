"""The offline log verifier: a clean log verifies, and each named tampering is caught."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Sequence

import pytest

from bulkhead.audit.checkpoint import Signer, sign_checkpoint
from bulkhead.audit.hashing import EMPTY_ROOT, leaf_hashes
from bulkhead.audit.jcs import canonicalize
from bulkhead.audit.proofs import VerificationError
from bulkhead.audit.tree import root
from bulkhead.audit.verify import LogVerificationError, VerifiedLog, verify_log

ORIGIN = "bulkhead.example/audit/t1"
KEY = Signer.from_seed(ORIGIN, hashlib.sha256(b"log key").digest())
NEW_KEY = Signer.from_seed(ORIGIN, hashlib.sha256(b"rotated log key").digest())
STRANGER = Signer.from_seed(ORIGIN, hashlib.sha256(b"not the log's key").digest())
EVERY = range(1, 11)


def _entries(count: int, tenant: str = "t1") -> list[bytes]:
    return [canonicalize({"action": "chat", "tenant_id": tenant, "seq": i}) for i in range(count)]


def _checkpoints(
    entries: Sequence[bytes],
    sizes: Sequence[int],
    signer: Signer = KEY,
    origin: str = ORIGIN,
) -> list[bytes]:
    hashes = leaf_hashes(entries)
    return [sign_checkpoint(origin, size, root(hashes[:size]), signer) for size in sizes]


def _verify(
    entries: Sequence[bytes], checkpoints: Sequence[bytes], trusted: bytes | None = None
) -> VerifiedLog:
    verifiers = [KEY.verifier, NEW_KEY.verifier]
    return verify_log(entries, checkpoints, verifiers, origin=ORIGIN, trusted=trusted)


def _failure(
    entries: Sequence[bytes], checkpoints: Sequence[bytes], trusted: bytes | None = None
) -> LogVerificationError:
    with pytest.raises(LogVerificationError) as caught:
        _verify(entries, checkpoints, trusted)
    assert isinstance(caught.value, VerificationError)
    return caught.value


LOG = _entries(10)
DENSE = _checkpoints(LOG, EVERY)
SPARSE = _checkpoints(LOG, [4, 8, 10])


def test_a_clean_log_verifies() -> None:
    result = _verify(LOG, DENSE)
    assert (result.origin, result.size, result.root) == (ORIGIN, 10, root(leaf_hashes(LOG)))
    assert [c.size for c in result.checkpoints] == list(EVERY)
    assert result.latest.size == 10 and result.unsigned == 0 and result.trusted is None


def test_entries_after_the_last_checkpoint_are_reported_unsigned() -> None:
    result = _verify(LOG, SPARSE[:2])
    assert (result.size, result.latest.size, result.unsigned) == (10, 8, 2)


def test_an_empty_log_with_its_empty_checkpoint_verifies() -> None:
    result = _verify([], _checkpoints([], [0]))
    assert (result.size, result.root) == (0, EMPTY_ROOT)


def test_a_log_without_checkpoints_fails() -> None:
    error = _failure(LOG, [])
    assert (error.index, error.reason) == (0, "the log has no checkpoint to vouch for it")


def test_modified_entry() -> None:
    tampered = [*LOG[:6], canonicalize({"action": "chat", "tenant_id": "t1", "seq": 66}), *LOG[7:]]
    error = _failure(tampered, DENSE)
    assert (error.index, error.size, error.checkpoint) == (6, 7, 6)
    assert "modified, inserted, deleted or moved" in error.reason


def test_modified_entry_between_sparse_checkpoints() -> None:
    tampered = [*LOG[:6], LOG[6] + b" ", *LOG[7:]]
    error = _failure(tampered, SPARSE)
    # The checkpoints at 4 and 8 bound the bad entry to entries 4..7.
    assert (error.index, error.size, error.checkpoint) == (4, 8, 1)


def test_deleted_entry() -> None:
    error = _failure([*LOG[:3], *LOG[4:]], DENSE)
    assert (error.index, error.size) == (3, 4)


def test_reordered_entries() -> None:
    reordered = list(LOG)
    reordered[2], reordered[5] = reordered[5], reordered[2]
    error = _failure(reordered, DENSE)
    assert (error.index, error.size) == (2, 3)


def test_inserted_entry() -> None:
    error = _failure([*LOG[:4], canonicalize({"action": "forged"}), *LOG[4:]], DENSE)
    assert (error.index, error.size) == (4, 5)


def test_truncated_log() -> None:
    error = _failure(LOG[:7], DENSE)
    assert (error.index, error.size, error.checkpoint) == (7, 8, 7)
    assert "truncated" in error.reason


def test_checkpoint_swapped_in_from_another_tenants_log() -> None:
    other = _entries(10, tenant="t2")
    foreign = _checkpoints(other, [5], origin="bulkhead.example/audit/t2")[0]
    error = _failure(LOG, [*SPARSE[:1], foreign, *SPARSE[1:]])
    assert (error.index, error.size, error.checkpoint) == (4, None, 1)
    assert "not 'bulkhead.example/audit/t1'" in error.reason


def test_checkpoint_swapped_in_from_another_log_of_the_same_origin() -> None:
    foreign = _checkpoints(_entries(10, tenant="t2"), [8])[0]
    error = _failure(LOG, [SPARSE[0], foreign, SPARSE[2]])
    assert (error.index, error.size, error.checkpoint) == (4, 8, 1)


def test_checkpoint_signed_by_an_unknown_key() -> None:
    error = _failure(LOG, [*SPARSE[:2], *_checkpoints(LOG, [10], signer=STRANGER)])
    assert (error.index, error.checkpoint) == (8, 2)
    assert "no signature from a trusted key" in error.reason


def test_checkpoint_with_a_flipped_bit() -> None:
    bad = bytearray(SPARSE[1])
    bad[len(ORIGIN) + 1] ^= 1  # The first digit of the tree size.
    error = _failure(LOG, [SPARSE[0], bytes(bad), SPARSE[2]])
    assert (error.index, error.checkpoint) == (4, 1)


def test_replayed_older_checkpoint_in_the_list() -> None:
    error = _failure(LOG, [*SPARSE, SPARSE[0]])
    assert (error.index, error.size, error.checkpoint) == (4, 4, 3)
    assert "goes back from size 10 to 4" in error.reason


def test_trusted_older_checkpoint_verifies() -> None:
    for trusted in DENSE:
        assert _verify(LOG, SPARSE, trusted=trusted).trusted is not None


def test_trusted_checkpoint_beyond_the_signed_entries_verifies() -> None:
    # The log's own checkpoints stop at 8, but all 10 entries match the trusted one.
    assert _verify(LOG, SPARSE[:2], trusted=DENSE[9]).unsigned == 2


def test_rolled_back_log_under_a_newer_trusted_checkpoint() -> None:
    # The log shows an older state, replaying its older checkpoints, but the
    # verifier already trusts the newer checkpoint of size 10.
    error = _failure(LOG[:6], DENSE[:6], trusted=DENSE[9])
    assert (error.index, error.size, error.checkpoint) == (6, 10, None)
    assert "rolled back" in error.reason


def test_forked_log_against_a_trusted_checkpoint() -> None:
    # The operator rewrote entry 3 and re-signed every checkpoint after it:
    # each checkpoint matches the forked entries, but not the trusted one.
    fork = [*LOG[:3], canonicalize({"action": "rewritten"}), *LOG[4:]]
    error = _failure(fork, _checkpoints(fork, EVERY), trusted=DENSE[5])
    assert (error.index, error.size, error.checkpoint) == (6, 6, None)
    assert "forked" in error.reason


def test_fork_between_two_checkpoints_of_equal_size() -> None:
    fork = [*LOG[:3], canonicalize({"action": "rewritten"}), *LOG[4:]]
    error = _failure(fork, [*_checkpoints(fork, [5]), DENSE[4]])
    assert (error.index, error.size, error.checkpoint) == (5, 5, 1)
    assert "different roots" in error.reason


def test_trusted_checkpoint_that_does_not_open() -> None:
    error = _failure(LOG, SPARSE, trusted=_checkpoints(LOG, [4], signer=STRANGER)[0])
    assert (error.index, error.checkpoint) == (0, None)


def test_rotated_key_mid_log() -> None:
    checkpoints = [*_checkpoints(LOG, [3, 6]), *_checkpoints(LOG, [8, 10], signer=NEW_KEY)]
    assert _verify(LOG, checkpoints).latest.size == 10
    with pytest.raises(LogVerificationError) as caught:
        verify_log(LOG, checkpoints, [KEY.verifier], origin=ORIGIN)
    assert caught.value.checkpoint == 2


def test_every_checkpoint_is_checked_not_only_the_last() -> None:
    # A rewrite that was re-signed from size 6 on still contradicts the checkpoint of size 4.
    rewritten = [*LOG[:2], canonicalize({"action": "rewritten"}), *LOG[3:]]
    checkpoints = [SPARSE[0], *_checkpoints(rewritten, [8, 10])]
    error = _failure(rewritten, checkpoints)
    assert (error.index, error.size, error.checkpoint) == (0, 4, 0)


def test_large_log_across_hashing_chunks() -> None:
    entries = [i.to_bytes(4, "big") for i in range(140_000)]
    sizes = [1, 65_535, 65_536, 65_537, 131_072, 139_999, 140_000]
    checkpoints = _checkpoints(entries, sizes)
    assert _verify(entries, checkpoints).root == root(leaf_hashes(entries))
    entries[100_000] = b"tampered"
    error = _failure(entries, checkpoints)
    assert (error.index, error.size) == (65_537, 131_072)


@pytest.mark.parametrize("module", ["bulkhead.audit.verify", "bulkhead.audit.proofs"])
def test_the_verifier_imports_no_storage(module: str) -> None:
    # STYLE rule 15: the verifier runs on an exported log alone.
    code = (
        f"import sys, {module}\n"
        "loaded = [m for m in sys.modules if m.startswith(('bulkhead.store', 'sqlalchemy',"
        " 'bulkhead.audit.log', 'bulkhead.audit.tree'))]\n"
        "print(loaded)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    if module.endswith("proofs"):
        assert loaded.stdout.strip() == "[]"
    else:
        assert "bulkhead.store" not in loaded.stdout and "sqlalchemy" not in loaded.stdout
