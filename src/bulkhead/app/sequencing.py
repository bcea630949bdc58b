"""Only the audit sequencer, in a process of its own (`bulkhead audit sequencer`).

Every `bulkhead serve` runs the sequencer as a thread (`build.open_core`), and
replicas on one PostgreSQL take turns signing through an advisory lock
(`audit.sequencer`), so one more process signing is safe. This one opens the
same core as a gateway replica — the store (migrated), the KMS, the platform's
keys, the audit writer their key events go to, the sequencer — and nothing
else: no catalog, no listener, no workers. A Deployment of its own (the
Kubernetes package) then keeps checkpoints signed whatever the gateways'
replicas do. On `stop` the audit writer commits what it holds and the
sequencer signs a last checkpoint, as a gateway's shut-down does.
"""

from __future__ import annotations

import threading

from bulkhead.app.build import open_core
from bulkhead.settings import Settings


def run_sequencer(settings: Settings, stop: threading.Event, poll_s: float = 0.5) -> None:
    """Sign checkpoints until `stop` is set; then flush, sign the last one and close."""
    # This process signs what the gateways commit, which never wakes it: it looks for new
    # leaves as often as a gateway signs its own (`interval_s`), not every 30 s.
    core = open_core(settings, idle_s=0.5)  # starts the sequencer's thread and the writer
    try:
        while not stop.wait(poll_s):  # short waits: signal handlers run in between
            pass
    finally:
        core.audit.close()
        core.sequencer.close()
        core.db.dispose()
