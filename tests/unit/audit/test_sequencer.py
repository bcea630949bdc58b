"""The sequencer signs checkpoints of what is durable and hands them to witnesses."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from sqlalchemy import select, update

from bulkhead.audit.checkpoint import Signer, open_checkpoint
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import AuditLog
from bulkhead.audit.sequencer import FileWitness, HttpWitness, Sequencer
from bulkhead.audit.tree import CompactRange
from bulkhead.store import Database, upgrade
from bulkhead.store.schema import AuditCheckpointRow, AuditEntryRow

ORIGIN = "bulkhead/audit"


def test_checkpoints_reach_file_and_http_witnesses(
    db_url: str, db_admin_url: str | None, tmp_path: Path
) -> None:
    received: list[bytes] = []

    class Witness(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Witness)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    db = Database(db_url)
    upgrade(db, db_admin_url)
    signer = Signer.generate(ORIGIN)
    witnesses = [
        FileWitness(tmp_path / "cp.txt"),
        HttpWitness(f"http://127.0.0.1:{server.server_port}/witness"),
    ]
    sequencer = Sequencer(db, signer, ORIGIN, witnesses=witnesses)
    log = AuditLog(db)
    for _ in range(5):
        log.emit(AuditEvent(action="test", outcome="success", status=200))
    log.flush()
    note = sequencer.checkpoint()
    assert note is not None and received == [note]
    assert (tmp_path / "cp.txt").read_bytes() == note + b"\n"
    assert open_checkpoint(note, [signer.verifier], expected_origin=ORIGIN).size == 5
    assert sequencer.checkpoint() is None  # nothing new, nothing signed
    log.close()
    server.shutdown()
    db.dispose()


def test_a_witness_that_is_down_does_not_stop_the_log(
    db_url: str, db_admin_url: str | None
) -> None:
    db = Database(db_url)
    upgrade(db, db_admin_url)
    sequencer = Sequencer(
        db,
        Signer.generate(ORIGIN),
        ORIGIN,
        witnesses=[HttpWitness("http://127.0.0.1:9/down", timeout_s=0.5)],
    )
    log = AuditLog(db)
    log.emit(AuditEvent(action="test", outcome="success", status=200))
    log.flush()
    assert sequencer.checkpoint() is not None
    log.close()
    db.dispose()


def test_a_commit_wakes_the_sequencer_and_idle_it_looks_only_every_idle_s(
    db_url: str, db_admin_url: str | None
) -> None:
    db = Database(db_url)
    upgrade(db, db_admin_url)
    signer = Signer.generate(ORIGIN)
    signed = threading.Event()
    looks: list[int] = []

    class Counting(Sequencer):
        def checkpoint(self) -> bytes | None:
            looks.append(1)
            note = super().checkpoint()
            if note is not None:
                signed.set()
            return note

    # An hour between idle looks: only the writer's commit can bring a checkpoint.
    sequencer = Counting(db, signer, ORIGIN, interval_s=0.05, idle_s=3600).start()
    log = AuditLog(db, on_commit=sequencer.nudge)
    try:
        threading.Event().wait(0.3)
        assert looks == []  # idle: it did not poll the database
        log.emit(AuditEvent(action="test", outcome="success", status=200))
        log.flush()
        assert signed.wait(5), "a commit must wake the sequencer"
        assert open_checkpoint(signed_note(db), [signer.verifier], expected_origin=ORIGIN).size == 1
    finally:
        log.close()
        sequencer.close()
        db.dispose()


def test_leaves_another_process_committed_are_signed_within_idle_s(
    db_url: str, db_admin_url: str | None
) -> None:
    db = Database(db_url)
    upgrade(db, db_admin_url)
    signer = Signer.generate(ORIGIN)
    sequencer = Sequencer(db, signer, ORIGIN, interval_s=0.05, idle_s=0.2).start()
    other = AuditLog(db)  # another replica's writer: it never nudges this sequencer
    try:
        other.emit(AuditEvent(action="test", outcome="success", status=200))
        other.flush()
        for _ in range(100):
            if sequencer.signed_size == 1:
                break
            threading.Event().wait(0.05)
        assert sequencer.signed_size == 1
    finally:
        other.close()
        sequencer.close()
        db.dispose()


def signed_note(db: Database) -> bytes:
    with db.platform_transaction() as session:
        note = session.execute(
            select(AuditCheckpointRow.note).order_by(AuditCheckpointRow.size.desc()).limit(1)
        ).scalar_one()
    return bytes(note)


def test_a_starting_sequencer_resumes_from_the_newest_checkpoints_range(
    db_url: str, db_admin_url: str | None
) -> None:
    db = Database(db_url)
    upgrade(db, db_admin_url)
    signer = Signer.generate(ORIGIN)
    log = AuditLog(db)
    try:
        for _ in range(5):
            log.emit(AuditEvent(action="test", outcome="success", status=200))
        log.flush()
        first = Sequencer(db, signer, ORIGIN)
        assert first.checkpoint() is not None
        for _ in range(3):
            log.emit(AuditEvent(action="test", outcome="success", status=200))
        log.flush()
        later = Sequencer(db, signer, ORIGIN)  # a replica that starts now
        later._resume()
        assert later.tree.size == 5  # taken up from the checkpoint: leaves 0-4 not read
        note = later.checkpoint()
        assert note is not None
        whole = CompactRange()
        whole.extend(leaf_hashes(db))
        opened = open_checkpoint(note, [signer.verifier], expected_origin=ORIGIN)
        assert (opened.size, opened.root) == (8, whole.root())
    finally:
        log.close()
        db.dispose()


def test_a_range_that_does_not_give_the_signed_root_is_not_used(
    db_url: str, db_admin_url: str | None
) -> None:
    db = Database(db_url)
    upgrade(db, db_admin_url)
    signer = Signer.generate(ORIGIN)
    log = AuditLog(db)
    try:
        for _ in range(3):
            log.emit(AuditEvent(action="test", outcome="success", status=200))
        log.flush()
        assert Sequencer(db, signer, ORIGIN).checkpoint() is not None
        with db.platform_transaction() as session:  # someone with the database's keys
            session.execute(update(AuditCheckpointRow).values(border=b"\x00" * 64))
        later = Sequencer(db, signer, ORIGIN)
        later._resume()
        assert later.tree.size == 0  # ignored: the range is built from the leaves
        later._integrate()
        whole = CompactRange()
        whole.extend(leaf_hashes(db))
        assert later.tree.root() == whole.root()
    finally:
        log.close()
        db.dispose()


def leaf_hashes(db: Database) -> list[bytes]:
    with db.platform_transaction() as session:
        rows = session.execute(select(AuditEntryRow.leaf_hash).order_by(AuditEntryRow.idx))
        return [bytes(h) for h in rows.scalars()]


def test_a_failed_checkpoint_is_tried_again_without_a_new_commit(
    db_url: str, db_admin_url: str | None
) -> None:
    """The signing key away (an HSM gone): the leaves are signed once it is back, though
    nothing else is committed meanwhile."""
    db = Database(db_url)
    upgrade(db, db_admin_url)
    signer = Signer.generate(ORIGIN)
    failures = [2]

    class Flaky:
        def signer_for(self, session: object) -> Signer:
            if failures[0]:
                failures[0] -= 1
                raise RuntimeError("the token is gone")
            return signer

    sequencer = Sequencer(db, Flaky(), ORIGIN, interval_s=0.05, idle_s=3600).start()
    log = AuditLog(db, on_commit=sequencer.nudge)
    try:
        log.emit(AuditEvent(action="test", outcome="success", status=200))
        log.flush()
        for _ in range(100):
            if sequencer.signed_size == 1:
                break
            threading.Event().wait(0.05)
        assert sequencer.signed_size == 1 and failures == [0]
    finally:
        log.close()
        sequencer.close()
        db.dispose()
