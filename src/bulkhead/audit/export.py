"""Reading the log out of the database: bundles, proofs and event listings.

A tenant's view holds its own entries — its events, and the platform's
actions on it (`target_tenant`) — in full, and every other entry only as its
leaf hash, which is what lets the tenant check the signed roots without
seeing anyone else's content.

Costs are bounded: a bundle builds the tree's levels once (O(n) hashing for
all of its proofs, not O(n) per proof), and one event's proof reads that
event's row, the leaves of at most two blocks, and roots of full blocks that
`ProofCache` keeps.

The audit tables have no row-level security (the export filters a tenant's
view), so the reads run in plain transactions: a tenant's request never
switches row-level security off to read its view.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bulkhead.audit.bundle import FORMAT, b64
from bulkhead.audit.keys import verifier_keys
from bulkhead.audit.tree import (
    block_subtrees,
    inclusion_proof_from,
    inclusion_proofs,
    memory_subtrees,
    perfect_root,
)
from bulkhead.errors import IntegrityFailure, NotFound
from bulkhead.store.db import Database
from bulkhead.store.schema import AuditCheckpointRow, AuditEntryRow

BLOCK = 1024
"""Leaves per block whose root `ProofCache` keeps (a power of two)."""

_EVENT_ID = re.compile("[0-9a-f]{32}")
_PAGE = 64 * BLOCK


def _notes(session: Session) -> list[bytes]:
    query = select(AuditCheckpointRow.note).order_by(AuditCheckpointRow.size)
    return [bytes(n) for n in session.execute(query).scalars()]


def _latest(session: Session) -> bytes | None:
    query = select(AuditCheckpointRow.note).order_by(AuditCheckpointRow.size.desc()).limit(1)
    note = session.execute(query).scalar()
    return None if note is None else bytes(note)


def _size_of(note: bytes | None) -> int:
    return int(note.split(b"\n", 2)[1]) if note else 0


def _owned_by(tenant_id: str) -> Any:
    """The entries in a tenant's view: its own events and the platform's actions on it."""
    return or_(AuditEntryRow.tenant_id == tenant_id, AuditEntryRow.target_tenant_id == tenant_id)


def build_bundle(db: Database, origin: str, tenant_id: str | None = None) -> dict[str, Any]:
    """The whole log (`tenant_id` None) or one tenant's view of it."""
    # Checkpoints first: every leaf they cover is already committed, so the
    # entries read afterwards include them even without a single snapshot.
    with db.transaction() as session:
        notes = _notes(session)
    proofs: dict[str, list[str]] = {}
    if tenant_id is None:
        entries = _full_entries(db)
    else:
        entries, proofs = _tenant_entries(db, tenant_id, _size_of(notes[-1] if notes else None))
    return {
        "format": FORMAT,
        "origin": origin,
        "tenant": tenant_id,
        "size": len(entries),
        "entries": entries,
        "checkpoints": [n.decode() for n in notes],
        "verifiers": verifier_keys(db),
        "proofs": proofs,
    }


def _full_entries(db: Database) -> list[dict[str, str]]:
    with db.transaction() as session:
        bodies = session.execute(select(AuditEntryRow.body).order_by(AuditEntryRow.idx)).scalars()
        return [{"body": bytes(body).decode()} for body in bodies]


def _tenant_entries(
    db: Database, tenant_id: str, signed: int
) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    with db.transaction() as session:
        query = select(AuditEntryRow.leaf_hash).order_by(AuditEntryRow.idx)
        hashes = [bytes(h) for h in session.connection().execute(query).scalars()]
        own = session.execute(
            select(AuditEntryRow.idx, AuditEntryRow.body).where(_owned_by(tenant_id))
        ).all()
    # Rows appended between the two reads are left out: the bundle ends where `hashes` does.
    bodies = {int(idx): bytes(body).decode() for idx, body in own if idx < len(hashes)}
    entries = [
        {"body": bodies[idx]} if idx in bodies else {"hash": b64(leaf)}
        for idx, leaf in enumerate(hashes)
    ]
    paths = inclusion_proofs(
        memory_subtrees(hashes[:signed]), [idx for idx in bodies if idx < signed], signed
    )
    # Upper siblings are shared by many paths: encode each hash once.
    text: dict[bytes, str] = {}
    proofs = {
        str(idx): [text.get(h) or text.setdefault(h, b64(h)) for h in path]
        for idx, path in paths.items()
    }
    return entries, proofs


class ProofCache:
    """Roots of every full block of `BLOCK` leaves, read from the store once and kept.

    Leaves are never updated or deleted, so a block's root never changes; the
    cache only grows, by the blocks committed since it last looked.  It holds
    32 bytes per 1,024 entries.
    """

    def __init__(self, db: Database):
        self.db = db
        self._roots: list[bytes] = []
        self._lock = threading.Lock()

    def roots(self, blocks: int) -> list[bytes]:
        """The roots of the first `blocks` full blocks, reading only the ones not yet kept."""
        with self._lock:
            while len(self._roots) < blocks:
                self._roots.extend(self._read_roots(len(self._roots), blocks))
            return self._roots[:blocks]

    def _read_roots(self, first: int, blocks: int) -> list[bytes]:
        start = first * BLOCK
        end = min(blocks * BLOCK, start + _PAGE)
        hashes = _leaves(self.db, start, end)
        if len(hashes) != end - start:
            raise IntegrityFailure("the audit log is shorter than its newest checkpoint")
        return [perfect_root(hashes[i : i + BLOCK]) for i in range(0, len(hashes), BLOCK)]

    def proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[size]) of RFC 9162 §2.1.3.1 from the cache and two blocks of leaves."""
        roots = self.roots(size // BLOCK)
        read: dict[int, list[bytes]] = {}

        def leaves(number: int) -> list[bytes]:
            if number not in read:
                start = number * BLOCK
                read[number] = _leaves(self.db, start, min(start + BLOCK, size))
            return read[number]

        return inclusion_proof_from(block_subtrees(roots, BLOCK, leaves), index, size)


def _leaves(db: Database, start: int, end: int) -> list[bytes]:
    query = (
        select(AuditEntryRow.leaf_hash)
        .where(AuditEntryRow.idx >= start, AuditEntryRow.idx < end)
        .order_by(AuditEntryRow.idx)
    )
    with db.transaction() as session:
        # The Core path: plain rows, without the ORM's per-row machinery.
        return [bytes(h) for h in session.connection().execute(query).scalars()]


def prove(
    db: Database, event_id: str, tenant_id: str | None = None, cache: ProofCache | None = None
) -> dict[str, Any]:
    """Inclusion proof of one event in the newest checkpoint; another tenant's is not found."""
    missing = NotFound(f"audit event '{event_id[:64]}' not found")
    if not _EVENT_ID.fullmatch(event_id):
        raise missing
    with db.transaction() as session:
        note = _latest(session)
        query = select(
            AuditEntryRow.idx,
            AuditEntryRow.leaf_hash,
            AuditEntryRow.tenant_id,
            AuditEntryRow.target_tenant_id,
        )
        match = session.execute(query.where(AuditEntryRow.event_id == event_id)).first()
    # A tenant's view holds its own events and the platform's actions on it.
    if match is None or (tenant_id is not None and tenant_id not in (match[2], match[3])):
        raise missing
    signed = _size_of(note)
    if note is None or match.idx >= signed:
        raise NotFound(f"audit event '{event_id}' is not covered by a checkpoint yet; retry")
    path = (cache or ProofCache(db)).proof(int(match.idx), signed)
    return {
        "event_id": event_id,
        "index": int(match.idx),
        "size": signed,
        "leaf_hash": b64(bytes(match.leaf_hash)),
        "checkpoint": note.decode(),
        "proof": [b64(h) for h in path],
    }


def list_events(
    db: Database, tenant_id: str | None, after: int, limit: int
) -> list[dict[str, Any]]:
    """Events after leaf index `after`; `tenant_id` None lists every tenant's (platform only)."""
    query = select(AuditEntryRow.body).where(AuditEntryRow.idx > after)
    if tenant_id is not None:
        query = query.where(_owned_by(tenant_id))
    with db.transaction() as session:
        bodies = session.execute(query.order_by(AuditEntryRow.idx).limit(limit)).scalars().all()
    return [json.loads(b) for b in bodies]
