"""A model worker that, on SIGUSR1, allocates memory until something stops it (tests only).

``WorkerSupervisor(worker_module="bulkhead.testing.hungry_worker")`` runs the real
worker (`bulkhead.runtime.worker`) with this one addition, so a test can push one
worker over its memory limit on cue while its neighbours carry on.  The product never
imports this.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from bulkhead.runtime.worker.__main__ import main

CHUNK_BYTES = 32 << 20


def _eat() -> None:
    # Filled with ones, not zeros, so every page is really touched and charged.
    hoard = []
    while True:
        hoard.append(b"\x01" * CHUNK_BYTES)


def _on_signal(signal_number: int, frame: FrameType | None) -> None:
    threading.Thread(target=_eat, name="hungry", daemon=True).start()


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _on_signal)
    sys.exit(main())
