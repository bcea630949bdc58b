"""The interpreter's thread switch interval: one per process, set by two parts of the gateway.

The offload (`gateway/offload.py`) lowers it while heavy jobs run, so the event
loop waits at most 1 ms for the interpreter lock; the token encoder's build
(`limits/tokens.py`) raises it for its span, so no other thread's objects land
among its 200,000 token strings (less resident memory).  Each saving and
putting back the interval on its own, a build that overlapped a job put back
what the other had set, for good: 5 s (the event loop then waits seconds
behind any busy thread) or 1 ms.  Here one lock keeps both, and the interval
follows from who asks: lowered while any job runs (a waiting event loop costs
every tenant; a few MB do not), raised while a build runs otherwise, else what
the process had before anyone asked.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Iterator


class SwitchInterval:
    """Who asks for a lower or a higher interval; the process's interval follows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base = sys.getswitchinterval()
        self._lowered = 0
        self._low = math.inf
        self._held = 0
        self._high = 0.0

    @property
    def asked(self) -> int:
        """How many ask for an interval of their own now (0: the process's own)."""
        return self._lowered + self._held

    def lower(self, interval_s: float) -> None:
        """At most `interval_s` until the matching `restore` (a heavy job is queued)."""
        with self._lock:
            self._remember()
            self._lowered += 1
            self._low = min(self._low, interval_s)
            self._apply()

    def restore(self) -> None:
        """One `lower` is over."""
        with self._lock:
            self._lowered -= 1
            if not self._lowered:
                self._low = math.inf
            self._apply()

    @contextlib.contextmanager
    def held(self, interval_s: float) -> Iterator[None]:
        """At least `interval_s` for the span, except while a job has it lowered."""
        with self._lock:
            self._remember()
            self._held += 1
            self._high = max(self._high, interval_s)
            self._apply()
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
                if not self._held:
                    self._high = 0.0
                self._apply()

    def _remember(self) -> None:
        """The process's own interval, read when the first asks (lock held)."""
        if not self.asked:
            self._base = sys.getswitchinterval()

    def _apply(self) -> None:
        """Set what the askers add up to (lock held)."""
        if self._lowered:
            sys.setswitchinterval(min(self._base, self._low))
        elif self._held:
            sys.setswitchinterval(max(self._base, self._high))
        else:
            sys.setswitchinterval(self._base)


# Process-wide by nature: the one interval the interpreter has.
SWITCH = SwitchInterval()
