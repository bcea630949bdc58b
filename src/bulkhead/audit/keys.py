"""The checkpoint-signing key of this gateway, and the public keys of every signer.

The private key is an Ed25519 seed in the data dir (mode 0600) until the
KMS holds it.  Every signer's verifier key is recorded in the database, and
stays there after rotation, so old checkpoints remain verifiable and an
auditor can fetch all public keys with `bulkhead audit public-key`.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select, update

from bulkhead.audit.checkpoint import Signer, Verifier
from bulkhead.store.db import Database
from bulkhead.store.schema import AuditKeyRow, utcnow


def _write_seed(path: Path, seed: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(seed.hex().encode())


def load_signer(path: Path, name: str) -> Signer:
    """The signer whose seed is in `path`, created on first use."""
    if not path.exists():
        _write_seed(path, os.urandom(32))
    return Signer.from_seed(name, bytes.fromhex(path.read_text().strip()))


def register(db: Database, verifier: Verifier) -> None:
    with db.platform_transaction() as session:
        if session.get(AuditKeyRow, verifier.vkey) is None:
            session.add(
                AuditKeyRow(
                    vkey=verifier.vkey, name=verifier.name, created_at=utcnow(), retired_at=None
                )
            )


def rotate(db: Database, path: Path, name: str) -> Signer:
    """Replace this gateway's signing key; the old public key stays for verification."""
    old = load_signer(path, name)
    replacement = path.with_suffix(".new")
    replacement.unlink(missing_ok=True)
    _write_seed(replacement, os.urandom(32))
    os.replace(replacement, path)
    signer = load_signer(path, name)
    register(db, signer.verifier)
    with db.platform_transaction() as session:
        session.execute(
            update(AuditKeyRow)
            .where(AuditKeyRow.vkey == old.verifier.vkey)
            .values(retired_at=utcnow())
        )
    return signer


def verifier_keys(db: Database) -> list[str]:
    # Public keys, in a table without row-level security: tenants read them too.
    with db.transaction() as session:
        return list(
            session.execute(select(AuditKeyRow.vkey).order_by(AuditKeyRow.created_at)).scalars()
        )
