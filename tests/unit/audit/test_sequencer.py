"""The sequencer signs checkpoints of what is durable and hands them to witnesses."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from bulkhead.audit.checkpoint import Signer, open_checkpoint
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import AuditLog
from bulkhead.audit.sequencer import FileWitness, HttpWitness, Sequencer
from bulkhead.store import Database, upgrade

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
