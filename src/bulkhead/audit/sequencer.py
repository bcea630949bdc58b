"""Integrates committed leaves into the Merkle tree and signs checkpoints.

Within `interval_s` of a commit by this process's writer (`nudge`), or as
soon as `every` new leaves are durable, and otherwise every `idle_s` (leaves
another replica committed and did not sign: it died), the
sequencer reads the leaves committed since its last look, extends its
compact range (RFC 9162 §2.1.1, O(log n) state), and signs a checkpoint of
the whole log (C2SP tlog-checkpoint).  With several gateway processes on one
PostgreSQL, a transaction-scoped advisory lock lets one of them sign each
checkpoint; the others just keep their compact range current.  The key is
asked for inside that transaction (`SignerSource`), so every replica signs
with the platform's newest key (`audit.keys`).  Checkpoints
are also handed to witnesses (a file or an HTTP endpoint) that keep them
out of the operator's reach.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bulkhead.audit.checkpoint import Signer, checkpoint_body, sign_checkpoint
from bulkhead.audit.hashing import HASH_SIZE
from bulkhead.audit.tree import CompactRange
from bulkhead.store.db import Database
from bulkhead.store.schema import AuditCheckpointRow, AuditEntryRow, utcnow

log = logging.getLogger("bulkhead.audit")
CHECKPOINT_LOCK = 0x62756C6B63687074
_PAGE = 50_000


class Witness(Protocol):
    def publish(self, note: bytes) -> None: ...


class FileWitness:
    """Appends each checkpoint to a file (e.g. on storage the operator cannot rewrite)."""

    def __init__(self, path: Path):
        self.path = path
        # Nothing else writes to the data dir's `audit/` since the signing key moved
        # into the database, so the witness makes its own directory.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def publish(self, note: bytes) -> None:
        with self.path.open("ab") as f:
            f.write(note + b"\n")


class HttpWitness:
    """POSTs each checkpoint to a witness service."""

    def __init__(self, url: str, timeout_s: float = 5.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError("a witness URL must be http(s)")
        self.url, self.timeout_s = url, timeout_s

    def publish(self, note: bytes) -> None:
        request = urllib.request.Request(self.url, data=note, method="POST")  # noqa: S310
        request.add_header("content-type", "text/plain; charset=utf-8")
        with urllib.request.urlopen(request, timeout=self.timeout_s):  # noqa: S310
            pass


class SignerSource(Protocol):
    """Where the signing key comes from: asked in the transaction that records a checkpoint."""

    def signer_for(self, session: Session) -> Signer: ...


class FixedSigner:
    """One signer for good (tests, tools that append to a log of their own)."""

    def __init__(self, signer: Signer):
        self.signer = signer

    def signer_for(self, session: Session) -> Signer:
        return self.signer


class Sequencer:
    def __init__(
        self,
        db: Database,
        signer: Signer | SignerSource,
        origin: str,
        *,
        interval_s: float = 0.5,
        every: int = 10_000,
        idle_s: float = 30.0,
        witnesses: Sequence[Witness] = (),
    ):
        self.db, self.origin = db, origin
        # The platform's signing key is asked for at each checkpoint, under the
        # checkpoint lock, so every replica signs with the newest version.
        self.keys = FixedSigner(signer) if isinstance(signer, Signer) else signer
        self.interval_s, self.every, self.idle_s = interval_s, every, idle_s
        self.witnesses = tuple(witnesses)
        self.tree = CompactRange()
        self._resumed = False  # the range is taken up from the newest checkpoint at first
        self.signed_size = -1
        # `_due`: this process committed leaves (or was asked to sign): sign within
        # `interval_s`.  `_wake`: sign now.  With neither, the thread sleeps `idle_s`.
        self._due = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sequencer", daemon=True)

    def start(self) -> Sequencer:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Sign a checkpoint soon (after a key rotation, so the new key signs at once)."""
        self._due.set()
        self._wake.set()

    def nudge(self, pending: int) -> None:
        """Called by the writer after each commit: sign within `interval_s`, or at once
        when `every` leaves are new."""
        # Set already: its commit precedes the thread's clearing it, so the look after
        # that integrates it; `Event.set` (a lock and a notify) is skipped.
        if not self._due.is_set():
            self._due.set()
        if pending - self.tree.size >= self.every:
            self._wake.set()

    def _resume(self) -> None:
        """Start from the newest checkpoint's compact range, if it kept one that gives the
        root its note signed; else the range is built from the first leaf."""
        with self.db.platform_transaction() as session:
            row = session.execute(
                select(AuditCheckpointRow.size, AuditCheckpointRow.note, AuditCheckpointRow.border)
                .where(AuditCheckpointRow.border.is_not(None))
                .order_by(AuditCheckpointRow.size.desc())
                .limit(1)
            ).first()
        if row is None or row.border is None:
            return
        border = bytes(row.border)
        try:
            tree = CompactRange.from_border(
                row.size, [border[i : i + HASH_SIZE] for i in range(0, len(border), HASH_SIZE)]
            )
            signed = bytes(row.note).startswith(checkpoint_body(self.origin, row.size, tree.root()))
        except ValueError:
            signed = False
        if not signed:
            log.warning(
                "checkpoint %d's compact range is not what it signed: reading all", row.size
            )
            return
        self.tree = tree

    def _integrate(self) -> None:
        """Extend the compact range with every leaf committed since the last look."""
        if not self._resumed:
            self._resume()
            self._resumed = True
        while True:
            with self.db.platform_transaction() as session:
                hashes = (
                    session.execute(
                        select(AuditEntryRow.leaf_hash)
                        .where(AuditEntryRow.idx >= self.tree.size)
                        .order_by(AuditEntryRow.idx)
                        .limit(_PAGE)
                    )
                    .scalars()
                    .all()
                )
            self.tree.extend(list(hashes))
            if len(hashes) < _PAGE:
                return

    def checkpoint(self) -> bytes | None:
        """Integrate new leaves and sign a checkpoint if the tree grew; return the note."""
        # The background thread and an explicit caller may both get here: the
        # compact range must be extended by one of them at a time.
        with self._lock:
            return self._checkpoint()

    def _checkpoint(self) -> bytes | None:
        self._integrate()
        size = self.tree.size
        if size == self.signed_size:
            return None
        try:
            with self.db.platform_transaction() as session:
                if (
                    self.db.dialect == "postgresql"
                    and not session.execute(
                        text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": CHECKPOINT_LOCK}
                    ).scalar()
                ):
                    return None
                latest = session.execute(select(func.max(AuditCheckpointRow.size))).scalar()
                if latest is not None and latest >= size:
                    self.signed_size = size
                    return None
                signer = self.keys.signer_for(session)
                note = sign_checkpoint(self.origin, size, self.tree.root(), signer)
                session.execute(
                    insert(AuditCheckpointRow),
                    [
                        {
                            "size": size,
                            "root": self.tree.root(),
                            "note": note,
                            "created_at": utcnow(),
                            "border": b"".join(self.tree.hashes),
                        }
                    ],
                )
        except IntegrityError:
            return None
        self.signed_size = size
        self._publish(note)
        return note

    def _publish(self, note: bytes) -> None:
        for witness in self.witnesses:
            try:
                witness.publish(note)
            except Exception as exc:  # A witness being down must not stop the log.
                log.warning("witness %s failed: %s", type(witness).__name__, type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.is_set():
            # A commit here is signed within `interval_s` (more leaves join it meanwhile).
            # Leaves only other replicas committed are signed by their own sequencers; a
            # look every `idle_s` signs those of a replica that died before it could.
            if self._due.wait(self.idle_s):
                self._wake.wait(self.interval_s)
            self._due.clear()
            self._wake.clear()
            try:
                self.checkpoint()
            except Exception as exc:  # The database or the HSM may be briefly away.
                log.warning("checkpoint failed: %s", type(exc).__name__)
                self._due.set()  # unsigned leaves wait: try again within `interval_s`

    def close(self) -> None:
        self._stop.set()
        self._due.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            self.checkpoint()
        except Exception as exc:
            log.warning("final checkpoint failed: %s", type(exc).__name__)
