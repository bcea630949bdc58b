"""The offline verifier of an exported audit log.

It needs the entries (the leaf data, in log order), the signed checkpoints and
the log's public keys — nothing from the gateway's storage.  It recomputes the
Merkle tree once, front to back, and stops at every checkpoint's size to
compare the signed root with the root of that many entries.  Every checkpoint
is checked, not only the last: a log that was rewritten and re-signed from
some point on is caught at the first checkpoint the rewrite contradicts.

Two checkpoints whose roots both equal roots of prefixes of the same entries
are consistent by construction (RFC 9162 §2.1.4: the smaller tree is a prefix
of the larger), so no consistency proofs are needed between them; what is left
to check is that sizes never go back and that equal sizes carry equal roots.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bulkhead.audit.checkpoint import Checkpoint, Verifier, open_checkpoint
from bulkhead.audit.hashing import leaf_hashes
from bulkhead.audit.proofs import VerificationError
from bulkhead.audit.tree import CompactRange

_CHUNK = 1 << 16
"""Entries hashed per step: bounds memory without a Python call per entry."""

LeafSource = Callable[[int, int], Sequence[bytes]]
"""`hashes(start, end)` returns the leaf hashes of entries `start` to `end - 1`."""


class LogVerificationError(VerificationError):
    """An exported log failed verification.

    `reason` says what failed.  `index` locates it:

    * entries that contradict a checkpoint (modified, inserted, deleted or
      reordered): the first entry not covered by an earlier verified
      checkpoint — the earliest entry that can be bad, and exactly the bad
      entry when the log has a checkpoint after every entry;
    * entries missing (a truncated log, a rollback below the trusted
      checkpoint): the log's length, the first missing entry;
    * a checkpoint that contradicts another one (sizes going back, a fork at
      equal size, a trusted checkpoint that the entries contradict): that
      checkpoint's tree size;
    * a checkpoint that does not open (signature, key, origin, format): the
      number of entries verified so far.

    `size` is the tree size of the checkpoint concerned, where it is known, and
    `checkpoint` its position in the exported list (None for the trusted one).
    """

    def __init__(
        self, reason: str, *, index: int, size: int | None = None, checkpoint: int | None = None
    ) -> None:
        where = "trusted checkpoint" if checkpoint is None else f"checkpoint {checkpoint}"
        super().__init__(f"{reason} ({where}, index {index})")
        self.reason = reason
        self.index = index
        self.size = size
        self.checkpoint = checkpoint


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    """What a successful verification established about an exported log."""

    origin: str
    size: int
    """The number of entries, including any that no checkpoint covers yet."""
    root: bytes
    """The Merkle root of all `size` entries."""
    checkpoints: tuple[Checkpoint, ...]
    trusted: Checkpoint | None

    @property
    def latest(self) -> Checkpoint:
        return self.checkpoints[-1]

    @property
    def unsigned(self) -> int:
        """The number of entries after the latest checkpoint, which nothing vouches for."""
        return self.size - self.latest.size


def verify_log(
    entries: Sequence[bytes],
    checkpoints: Sequence[bytes],
    verifiers: Iterable[Verifier],
    *,
    origin: str,
    trusted: bytes | None = None,
) -> VerifiedLog:
    """Verifies an exported log against its signed checkpoints; raises LogVerificationError.

    `trusted` is a checkpoint the caller kept from an earlier verification; the
    log must extend it, or it was rolled back or forked since.
    """

    def hashes(start: int, end: int) -> Sequence[bytes]:
        return leaf_hashes(entries[start:end])

    return _verify(hashes, len(entries), checkpoints, verifiers, origin, trusted)


def verify_leaf_hashes(
    hashes: Sequence[bytes],
    checkpoints: Sequence[bytes],
    verifiers: Iterable[Verifier],
    *,
    origin: str,
    trusted: bytes | None = None,
) -> VerifiedLog:
    """`verify_log` over the entries' leaf hashes (a tenant's view hides others' entries).

    The same checks, the trusted checkpoint's included: a rolled-back or
    forked log fails however its entries are given.
    """

    def given(start: int, end: int) -> Sequence[bytes]:
        return hashes[start:end]

    return _verify(given, len(hashes), checkpoints, verifiers, origin, trusted)


def _verify(
    hashes: LeafSource,
    count: int,
    checkpoints: Sequence[bytes],
    verifiers: Iterable[Verifier],
    origin: str,
    trusted: bytes | None,
) -> VerifiedLog:
    keys = tuple(verifiers)
    if not checkpoints:
        raise LogVerificationError("the log has no checkpoint to vouch for it", index=0)
    walk = _Walk(hashes, count, _open_trusted(trusted, keys, origin))
    opened = [walk.check(position, note, keys, origin) for position, note in enumerate(checkpoints)]
    walk.check_trusted(up_to=None)
    return VerifiedLog(origin, count, walk.root_at(count), tuple(opened), walk.trusted)


def _open_trusted(note: bytes | None, keys: tuple[Verifier, ...], origin: str) -> Checkpoint | None:
    if note is None:
        return None
    try:
        return open_checkpoint(note, keys, expected_origin=origin)
    except VerificationError as exc:
        raise LogVerificationError(f"trusted checkpoint does not open: {exc}", index=0) from exc


class _Walk:
    """Hashes the entries once, front to back, and checks checkpoints on the way."""

    def __init__(self, hashes: LeafSource, count: int, trusted: Checkpoint | None) -> None:
        self._hashes = hashes
        self._count = count
        self._tree = CompactRange()
        self._last: Checkpoint | None = None
        self._pending = trusted
        self.trusted = trusted

    @property
    def verified(self) -> int:
        """The number of entries that a verified checkpoint covers."""
        return 0 if self._last is None else self._last.size

    def check(
        self, position: int, note: bytes, keys: tuple[Verifier, ...], origin: str
    ) -> Checkpoint:
        """Opens checkpoint `position` and checks it against its predecessor and the entries."""
        checkpoint = self._open(position, note, keys, origin)
        self._check_order(position, checkpoint)
        self.check_trusted(up_to=checkpoint.size)
        self._check_root(position, checkpoint)
        self._last = checkpoint
        return checkpoint

    def check_trusted(self, *, up_to: int | None) -> None:
        """Checks the trusted checkpoint once the walk reaches its size (or `up_to` is None)."""
        trusted = self._pending
        if trusted is None or (up_to is not None and trusted.size > up_to):
            return
        self._pending = None
        if trusted.size > self._count:
            raise LogVerificationError(
                f"log has {self._count} entries but a trusted checkpoint covers "
                f"{trusted.size}: the log was rolled back",
                index=self._count,
                size=trusted.size,
            )
        if not hmac.compare_digest(self.root_at(trusted.size), trusted.root):
            raise LogVerificationError(
                f"the first {trusted.size} entries do not match the trusted checkpoint: "
                "the log forked from it",
                index=trusted.size,
                size=trusted.size,
            )

    def root_at(self, size: int) -> bytes:
        """Returns the root of the first `size` entries; sizes must not go back."""
        tree = self._tree
        if size < tree.size:
            raise ValueError(f"the walk is past size {size}; it cannot go back")
        while tree.size < size:
            end = min(size, tree.size + _CHUNK)
            tree.extend(self._hashes(tree.size, end))
        return tree.root()

    def _open(
        self, position: int, note: bytes, keys: tuple[Verifier, ...], origin: str
    ) -> Checkpoint:
        try:
            return open_checkpoint(note, keys, expected_origin=origin)
        except VerificationError as exc:
            raise LogVerificationError(
                f"checkpoint does not open: {exc}", index=self.verified, checkpoint=position
            ) from exc

    def _check_order(self, position: int, checkpoint: Checkpoint) -> None:
        last = self._last
        if last is None:
            return
        if checkpoint.size < last.size:
            raise LogVerificationError(
                f"checkpoint goes back from size {last.size} to {checkpoint.size}",
                index=checkpoint.size,
                size=checkpoint.size,
                checkpoint=position,
            )
        if checkpoint.size == last.size and not hmac.compare_digest(checkpoint.root, last.root):
            raise LogVerificationError(
                f"two checkpoints of size {last.size} have different roots: the log forked",
                index=checkpoint.size,
                size=checkpoint.size,
                checkpoint=position,
            )

    def _check_root(self, position: int, checkpoint: Checkpoint) -> None:
        size = checkpoint.size
        if size > self._count:
            raise LogVerificationError(
                f"checkpoint covers {size} entries but the log has only {self._count}: "
                "the log was truncated",
                index=self._count,
                size=size,
                checkpoint=position,
            )
        if not hmac.compare_digest(self.root_at(size), checkpoint.root):
            raise LogVerificationError(
                f"entries {self.verified} to {size - 1} do not match the checkpoint: an entry "
                "was modified, inserted, deleted or moved",
                index=self.verified,
                size=size,
                checkpoint=position,
            )
