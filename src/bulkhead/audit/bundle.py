"""The export bundle an auditor verifies offline: no storage, just the file and public keys.

A bundle is one JSON document::

    {"format": "bulkhead-audit-bundle/1", "origin": ..., "tenant": null | id,
     "size": n, "entries": [...], "checkpoints": [signed notes], "verifiers": [vkeys],
     "proofs": {...}}

A full export lists every entry's canonical JSON, and must: an entry given
only as its hash could hide any event.  A tenant's export lists its own
entries in full and every other entry only as its leaf hash, so the tenant
can check its events are in the signed log without seeing anyone else's;
each own entry also carries an inclusion proof against the newest
checkpoint (RFC 9162 §2.1.3).

A bundle comes from whoever hands it over, so nothing in it is trusted: its
shape is checked strictly (types, sizes, nesting) before anything is
computed, and every failure is a `VerificationError` naming what is wrong.
The log's origin and keys come from the auditor, never from the bundle.
The verdict covers what the checkpoints sign; entries after the last
checkpoint are reported apart, as unsigned.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bulkhead.audit.checkpoint import Checkpoint, Verifier
from bulkhead.audit.hashing import HASH_SIZE, leaf_hash
from bulkhead.audit.proofs import VerificationError, verify_inclusion
from bulkhead.audit.verify import LogVerificationError, verify_leaf_hashes

FORMAT = "bulkhead-audit-bundle/1"
GENESIS = bytes(32)

MAX_ENTRY_BYTES = 256 * 1024
"""The longest entry body accepted; the writer bounds every field, so events stay far below."""
MAX_NOTE_BYTES = 16 * 1024
MAX_NAME = 1024
"""The longest origin, tenant id or verifier key accepted."""
MAX_PROOF = 64
"""An inclusion proof in a tree of fewer than 2**64 leaves has at most 64 hashes."""

_TOP_REQUIRED = frozenset({"format", "origin", "entries", "checkpoints"})
_TOP = _TOP_REQUIRED | {"tenant", "size", "verifiers", "proofs"}
_INDEX = re.compile("0|[1-9][0-9]{0,18}")


class MalformedBundle(LogVerificationError):
    """The bundle is not a well-formed bundle: wrong types, sizes, fields or nesting."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


@dataclass(frozen=True, slots=True)
class BundleReport:
    size: int
    checkpoints: int
    signed_size: int
    """Entries a verified checkpoint signs: the verdict covers these."""
    own_entries: int
    tenant: str | None
    unsigned: int = 0
    """Entries after the last checkpoint: nothing vouches for them yet."""
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Bundle:
    """A bundle whose shape has been checked; nothing in it is verified yet."""

    origin: str
    tenant: str | None
    entries: tuple[tuple[str, bytes], ...]  # ("body", canonical JSON) or ("hash", leaf hash)
    checkpoints: tuple[bytes, ...]
    proofs: tuple[tuple[int, tuple[bytes, ...]], ...]


def _malformed(reason: str, index: int = 0) -> MalformedBundle:
    return MalformedBundle(f"malformed bundle: {reason}", index=index)


def _fail(reason: str, index: int) -> LogVerificationError:
    return LogVerificationError(reason, index=index)


def parse_bundle(data: object) -> Bundle:
    """Checks a decoded bundle's shape strictly; raises `MalformedBundle` naming what is wrong."""
    top = _object(data)
    if top["format"] != FORMAT:
        raise _malformed(f"not a {FORMAT} bundle")
    entries = _list(top["entries"], "entries")
    size = top.get("size", len(entries))
    if type(size) is not int or size != len(entries):
        raise _malformed("'size' is not the number of entries")
    notes = _list(top["checkpoints"], "checkpoints")
    for position, vkey in enumerate(_list(top.get("verifiers", []), "verifiers")):
        # The bundle's own keys are never trusted; they must still be well-formed text.
        _text(vkey, f"verifier {position}", MAX_NAME)
    tenant = top.get("tenant")
    return Bundle(
        origin=_text(top["origin"], "origin", MAX_NAME),
        tenant=None if tenant is None else _text(tenant, "tenant", MAX_NAME),
        entries=tuple(_entry(position, item) for position, item in enumerate(entries)),
        checkpoints=tuple(
            _text(note, f"checkpoint {position}", MAX_NOTE_BYTES).encode("utf-8", "surrogatepass")
            for position, note in enumerate(notes)
        ),
        proofs=_proofs(top.get("proofs") or {}, len(entries)),
    )


def _object(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _malformed("the bundle is not a JSON object")
    unknown = sorted(str(k)[:40] for k in data if k not in _TOP)
    if unknown:
        raise _malformed(f"unknown field {unknown[0]!r}")
    missing = sorted(_TOP_REQUIRED - data.keys())
    if missing:
        raise _malformed(f"field {missing[0]!r} is missing")
    return data


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _malformed(f"'{what}' is not a list")
    return value


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise _malformed(f"{what} is not a string")
    if len(value) > limit or len(value.encode("utf-8", "surrogatepass")) > limit:
        raise _malformed(f"{what} is longer than {limit} bytes")
    return value


def _entry(position: int, item: object) -> tuple[str, bytes]:
    """One entry: exactly {"body": canonical JSON} or {"hash": base64 leaf hash}."""
    if not isinstance(item, dict) or len(item) != 1:
        raise _malformed(f"entry {position} is not an object with one 'body' or 'hash'", position)
    ((kind, value),) = item.items()
    if kind == "body":
        if not isinstance(value, str):
            raise _malformed(f"entry {position}'s body is not a string", position)
        try:
            body = value.encode("utf-8")
        except UnicodeEncodeError:
            raise _malformed(f"entry {position}'s body is not valid UTF-8", position) from None
        if len(body) > MAX_ENTRY_BYTES:
            raise _malformed(f"entry {position} is longer than {MAX_ENTRY_BYTES} bytes", position)
        return "body", body
    if kind == "hash":
        return "hash", _hash(value, f"entry {position}'s hash", position)
    raise _malformed(f"entry {position} has an unknown field", position)


def _hash(value: object, what: str, position: int) -> bytes:
    text = _text(value, what, 64)
    try:
        raw = unb64(text)
    except ValueError:
        raise _malformed(f"{what} is not base64", position) from None
    if len(raw) != HASH_SIZE or b64(raw) != text:
        raise _malformed(f"{what} is not a canonical base64 SHA-256 hash", position)
    return raw


def _proofs(value: object, count: int) -> tuple[tuple[int, tuple[bytes, ...]], ...]:
    if not isinstance(value, dict):
        raise _malformed("'proofs' is not an object")
    out = []
    for key, path in value.items():
        if not isinstance(key, str) or not _INDEX.fullmatch(key) or int(key) >= count:
            raise _malformed(f"proof key {str(key)[:40]!r} is not an entry's index")
        index = int(key)
        hashes = _list(path, f"proof of entry {index}")
        if len(hashes) > MAX_PROOF:
            raise _malformed(f"proof of entry {index} is longer than {MAX_PROOF} hashes", index)
        out.append((index, tuple(_hash(h, f"proof of entry {index}", index) for h in hashes)))
    return tuple(out)


def origin_of(verifiers: Sequence[Verifier]) -> str:
    """The log the auditor's keys belong to: their one key name (signers are named by origin)."""
    names = {v.name for v in verifiers}
    if len(names) != 1:
        raise VerificationError(
            "the verifier keys name "
            + ("no log" if not names else f"{len(names)} logs")
            + ": say which log the bundle must be (its origin)"
        )
    return names.pop()


def _decode(position: int, body: bytes) -> dict[str, Any]:
    try:
        entry = orjson.loads(body)  # orjson refuses nesting deeper than 1024 levels
    except orjson.JSONDecodeError:
        raise _fail(f"entry {position} is not JSON (or nested too deeply)", position) from None
    if not isinstance(entry, dict):
        raise _fail(f"entry {position} is not a JSON object", position)
    return entry


def _check_chain(position: int, entry: Mapping[str, Any], prev: bytes) -> None:
    """The entry names its own index and the previous leaf's hash."""
    idx = entry.get("idx")
    if type(idx) is not int or idx != position:
        raise _fail(
            f"entry {position} claims index {str(idx)[:40]}: rows were deleted, "
            "inserted or reordered",
            position,
        )
    if entry.get("prev") != b64(prev):
        raise _fail(
            f"entry {position} does not link to entry {position - 1}: entry {position - 1} "
            f"was modified or entry {position} inserted",
            position - 1 if position else 0,
        )


def _check_owner(position: int, entry: Mapping[str, Any], tenant: str) -> None:
    # A tenant's view shows in full only its own events and the platform's actions on it.
    if tenant not in (entry.get("tenant_id"), entry.get("target_tenant")):
        raise _fail(f"entry {position} is shown in full but is not the tenant's", position)


def leaf_hashes_of(bundle: Bundle) -> list[bytes]:
    """Leaf hashes of a bundle's entries, checking each full entry's position, link and owner.

    A full export (no tenant) must carry every entry's body: an entry given as
    a bare hash could be any event at all, so it is refused.
    """
    hashes: list[bytes] = []
    for position, (kind, value) in enumerate(bundle.entries):
        if kind == "hash":
            if bundle.tenant is None:
                raise _fail(
                    f"entry {position} of a full export is only a hash: a full export must "
                    "carry every entry, or it can hide one",
                    position,
                )
            hashes.append(value)
            continue
        entry = _decode(position, value)
        _check_chain(position, entry, hashes[-1] if hashes else GENESIS)
        if bundle.tenant is not None:
            _check_owner(position, entry, bundle.tenant)
        hashes.append(leaf_hash(value))
    return hashes


def _check_proofs(bundle: Bundle, hashes: Sequence[bytes], latest: Checkpoint) -> None:
    for index, path in bundle.proofs:
        if bundle.entries[index][0] != "body":
            raise _fail(f"entry {index} has a proof but is not shown", index)
        try:
            verify_inclusion(index, latest.size, hashes[index], path, latest.root)
        except VerificationError as exc:
            raise _fail(f"inclusion proof of entry {index} fails: {exc}", index) from exc


def verify_bundle(
    bundle: object,
    verifiers: Iterable[Verifier],
    *,
    origin: str | None = None,
    trusted: bytes | None = None,
    require_signed: bool = False,
) -> BundleReport:
    """Verify every link of a bundle; raise a `VerificationError` naming the first bad index.

    `origin` is the log the auditor expects (by default the one name of
    `verifiers`); a bundle of another log fails.  `trusted` is a checkpoint
    kept from an earlier verification: the log must extend it, full or
    tenant bundle alike.  The report's `signed_size` entries are verified;
    `unsigned` ones after the last checkpoint are not, and with
    `require_signed` they are an error.
    """
    keys = tuple(verifiers)
    log_origin = origin_of(keys) if origin is None else origin
    parsed = parse_bundle(bundle)
    if parsed.origin != log_origin:
        raise _fail(f"the bundle is of log {parsed.origin[:200]!r}, not {log_origin!r}", 0)
    hashes = leaf_hashes_of(parsed)
    result = verify_leaf_hashes(
        hashes, parsed.checkpoints, keys, origin=log_origin, trusted=trusted
    )
    _check_proofs(parsed, hashes, result.latest)
    unsigned = result.unsigned
    if require_signed and unsigned:
        raise _fail(
            f"{unsigned} entries after the last checkpoint are not signed", result.latest.size
        )
    return BundleReport(
        size=len(hashes),
        checkpoints=len(parsed.checkpoints),
        signed_size=result.latest.size,
        own_entries=sum(1 for kind, _ in parsed.entries if kind == "body"),
        tenant=parsed.tenant,
        unsigned=unsigned,
        origin=log_origin,
    )
