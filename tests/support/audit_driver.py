"""A process that appends audit events as fast as it can, for crash and concurrency tests.

    python -m tests.support.audit_driver DATABASE_URL DATA_DIR [COUNT]

Migrations run through BULKHEAD_DATABASE_ADMIN_URL when it is set.

It prints `ACK <n>` each time the first n events it emitted are durable;
COUNT bounds how many it emits (default: until killed).
"""

from __future__ import annotations

import os
import sys
import threading

from bulkhead.audit.checkpoint import Signer
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.keys import register
from bulkhead.audit.log import AuditLog
from bulkhead.audit.sequencer import Sequencer
from bulkhead.store import Database, upgrade

ORIGIN = "bulkhead/audit"


def main() -> None:
    # argv[2] (the data dir) is no longer read: the signing key is made per run.
    url = sys.argv[1]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 62
    db = Database(url)
    upgrade(db, os.environ.get("BULKHEAD_DATABASE_ADMIN_URL") or None)
    signer = Signer.generate(ORIGIN)  # each run signs with a key of its own, all registered
    register(db, signer.verifier)
    sequencer = Sequencer(db, signer, ORIGIN, interval_s=0.05, every=500).start()
    lock = threading.Lock()

    def acknowledged(n: int) -> None:
        sequencer.nudge(n)
        with lock:
            sys.stdout.write(f"ACK {n}\n")
            sys.stdout.flush()

    log = AuditLog(db, on_commit=acknowledged, max_batch=512)
    print("READY", flush=True)
    for i in range(count):
        log.emit(
            AuditEvent(
                action="test:append",
                outcome="success",
                status=200,
                tenant_id=f"ten_{i % 3}",
                resource=str(i),
            )
        )
        if i % 256 == 0:
            log.flush(timeout=5)
    log.flush(timeout=30)
    log.close()
    sequencer.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
