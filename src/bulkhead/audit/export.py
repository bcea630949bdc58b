"""Reading the log out of the database: bundles, proofs and event listings.

A tenant's view never includes another tenant's event content: other
entries appear only as leaf hashes, which is what lets the tenant check the
signed roots.  The audit tables have no row-level security (the export
filters a tenant's view), so the reads run in plain transactions: a tenant's
request never switches row-level security off to read its view.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from bulkhead.audit.bundle import FORMAT, b64
from bulkhead.audit.keys import verifier_keys
from bulkhead.audit.tree import inclusion_proof
from bulkhead.errors import NotFound
from bulkhead.store.db import Database
from bulkhead.store.schema import AuditCheckpointRow, AuditEntryRow


def _rows(db: Database) -> tuple[list[Any], list[bytes]]:
    # Checkpoints first: every leaf they cover is already committed, so the
    # entries read afterwards include them even without a single snapshot.
    with db.transaction() as session:
        notes = (
            session.execute(select(AuditCheckpointRow.note).order_by(AuditCheckpointRow.size))
            .scalars()
            .all()
        )
    with db.transaction() as session:
        rows = session.execute(
            select(
                AuditEntryRow.idx,
                AuditEntryRow.tenant_id,
                AuditEntryRow.leaf_hash,
                AuditEntryRow.body,
            ).order_by(AuditEntryRow.idx)
        ).all()
    return list(rows), [bytes(n) for n in notes]


def _latest_size(notes: list[bytes]) -> int:
    return int(notes[-1].split(b"\n", 2)[1]) if notes else 0


def build_bundle(db: Database, origin: str, tenant_id: str | None = None) -> dict[str, Any]:
    """The whole log (`tenant_id` None) or one tenant's view of it."""
    rows, notes = _rows(db)
    hashes = [bytes(r.leaf_hash) for r in rows]
    entries: list[dict[str, str]] = []
    proofs: dict[str, list[str]] = {}
    signed = _latest_size(notes)
    for row in rows:
        if tenant_id is None or row.tenant_id == tenant_id:
            entries.append({"body": bytes(row.body).decode()})
            if tenant_id is not None and row.idx < signed:
                proofs[str(row.idx)] = [b64(h) for h in inclusion_proof(hashes, row.idx, signed)]
        else:
            entries.append({"hash": b64(bytes(row.leaf_hash))})
    return {
        "format": FORMAT,
        "origin": origin,
        "tenant": tenant_id,
        "size": len(rows),
        "entries": entries,
        "checkpoints": [n.decode() for n in notes],
        "verifiers": verifier_keys(db),
        "proofs": proofs,
    }


def prove(db: Database, event_id: str, tenant_id: str | None = None) -> dict[str, Any]:
    """Inclusion proof of one event in the newest checkpoint; another tenant's is not found."""
    rows, notes = _rows(db)
    match = next((r for r in rows if json.loads(r.body).get("event_id") == event_id), None)
    if match is None or (tenant_id is not None and match.tenant_id != tenant_id):
        raise NotFound(f"audit event '{event_id}' not found")
    signed = _latest_size(notes)
    if match.idx >= signed:
        raise NotFound(f"audit event '{event_id}' is not covered by a checkpoint yet; retry")
    hashes = [bytes(r.leaf_hash) for r in rows]
    return {
        "event_id": event_id,
        "index": match.idx,
        "size": signed,
        "leaf_hash": b64(hashes[match.idx]),
        "checkpoint": notes[-1].decode(),
        "proof": [b64(h) for h in inclusion_proof(hashes, match.idx, signed)],
    }


def list_events(
    db: Database, tenant_id: str | None, after: int, limit: int
) -> list[dict[str, Any]]:
    """Events after leaf index `after`; `tenant_id` None lists every tenant's (platform only)."""
    query = select(AuditEntryRow.body).where(AuditEntryRow.idx > after)
    if tenant_id is not None:
        query = query.where(AuditEntryRow.tenant_id == tenant_id)
    with db.transaction() as session:
        bodies = session.execute(query.order_by(AuditEntryRow.idx).limit(limit)).scalars().all()
    return [json.loads(b) for b in bodies]
