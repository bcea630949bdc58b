"""The export bundle an auditor verifies offline: no storage, just the file and public keys.

A bundle is one JSON document::

    {"format": "bulkhead-audit-bundle/1", "origin": ..., "tenant": null | id,
     "size": n, "entries": [...], "checkpoints": [signed notes], "verifiers": [vkeys],
     "proofs": {...}}

A full export lists every entry's canonical JSON.  A tenant's export lists
its own entries in full and every other entry only as its leaf hash, so the
tenant can check its events are in the signed log without seeing anyone
else's; each own entry also carries an inclusion proof against the newest
checkpoint (RFC 9162 §2.1.3).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bulkhead.audit.checkpoint import Verifier, open_checkpoint
from bulkhead.audit.hashing import leaf_hash
from bulkhead.audit.proofs import VerificationError, verify_inclusion
from bulkhead.audit.tree import CompactRange
from bulkhead.audit.verify import LogVerificationError, VerifiedLog, verify_log

FORMAT = "bulkhead-audit-bundle/1"
GENESIS = bytes(32)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


@dataclass(frozen=True, slots=True)
class BundleReport:
    size: int
    checkpoints: int
    signed_size: int
    own_entries: int
    tenant: str | None


def _fail(reason: str, index: int) -> LogVerificationError:
    return LogVerificationError(reason, index=index)


def _check_chain(position: int, body: bytes, prev: bytes | None) -> None:
    """The entry names its own index and (when known) the previous leaf's hash."""
    try:
        entry = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _fail(f"entry {position} is not JSON", position) from None
    if not isinstance(entry, dict):
        raise _fail(f"entry {position} is not a JSON object", position)
    if entry.get("idx") != position:
        raise _fail(
            f"entry {position} claims index {entry.get('idx')!r}: rows were deleted, "
            "inserted or reordered",
            position,
        )
    if prev is not None and entry.get("prev") != b64(prev):
        raise _fail(
            f"entry {position} does not link to entry {position - 1}: entry {position - 1} "
            f"was modified or entry {position} inserted",
            position - 1 if position else 0,
        )


def leaf_hashes_of(entries: Sequence[dict[str, Any]]) -> list[bytes]:
    """Leaf hashes of a bundle's entries, checking each full entry's position and link."""
    hashes: list[bytes] = []
    for position, item in enumerate(entries):
        if "body" in item:
            body = item["body"].encode()
            _check_chain(position, body, hashes[-1] if hashes else GENESIS)
            hashes.append(leaf_hash(body))
        else:
            hashes.append(unb64(item["hash"]))
    return hashes


def _check_checkpoints(
    hashes: Sequence[bytes], notes: Sequence[bytes], keys: Sequence[Verifier], origin: str
) -> int:
    """Leaf-hash variant of `verify_log` for tenant bundles: every checkpoint, in order."""
    tree, signed = CompactRange(), 0
    for position, note in enumerate(notes):
        try:
            checkpoint = open_checkpoint(note, keys, expected_origin=origin)
        except VerificationError as exc:
            raise LogVerificationError(
                f"checkpoint does not open: {exc}", index=signed, checkpoint=position
            ) from exc
        if checkpoint.size < signed or checkpoint.size > len(hashes):
            raise LogVerificationError(
                "checkpoint size out of order or beyond the log",
                index=min(checkpoint.size, len(hashes)),
                checkpoint=position,
            )
        tree.extend(list(hashes[tree.size : checkpoint.size]))
        if not hmac.compare_digest(tree.root(), checkpoint.root):
            raise LogVerificationError(
                "entries contradict a signed checkpoint",
                index=signed,
                size=checkpoint.size,
                checkpoint=position,
            )
        signed = checkpoint.size
    return signed


def _check_proofs(
    bundle: dict[str, Any],
    hashes: Sequence[bytes],
    notes: Sequence[bytes],
    keys: Sequence[Verifier],
    origin: str,
) -> None:
    proofs = bundle.get("proofs") or {}
    if not proofs:
        return
    latest = open_checkpoint(notes[-1], keys, expected_origin=origin)
    for index_text, path in proofs.items():
        index = int(index_text)
        try:
            verify_inclusion(
                index, latest.size, hashes[index], [unb64(p) for p in path], latest.root
            )
        except (VerificationError, IndexError) as exc:
            raise _fail(f"inclusion proof of entry {index} fails: {exc}", index) from exc


def verify_bundle(
    bundle: dict[str, Any], verifiers: Iterable[Verifier], *, trusted: bytes | None = None
) -> BundleReport:
    """Verify every link of a bundle; raise `LogVerificationError` naming the first bad index."""
    if bundle.get("format") != FORMAT:
        raise _fail(f"not a {FORMAT} bundle", 0)
    keys, origin = tuple(verifiers), str(bundle["origin"])
    entries = bundle["entries"]
    notes = [n.encode() for n in bundle["checkpoints"]]
    hashes = leaf_hashes_of(entries)
    own = [e for e in entries if "body" in e]
    if len(own) == len(entries):
        result: VerifiedLog = verify_log(
            [e["body"].encode() for e in entries], notes, keys, origin=origin, trusted=trusted
        )
        signed = result.latest.size
    else:
        signed = _check_checkpoints(hashes, notes, keys, origin)
        if not notes:
            raise _fail("the bundle has no checkpoint to vouch for it", 0)
    _check_proofs(bundle, hashes, notes, keys, origin)
    return BundleReport(
        size=len(entries),
        checkpoints=len(notes),
        signed_size=signed,
        own_entries=len(own),
        tenant=bundle.get("tenant"),
    )
