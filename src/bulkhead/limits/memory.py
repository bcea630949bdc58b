"""The embedded limiter: a sliding log per key in this process, under one lock.

Exact for one process; replicas each keep their own log, so N replicas admit
up to N times the limits.  Use `RedisLimiter` to share limits across replicas.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from bulkhead.limits.limiter import (
    CONCURRENCY_RETRY_S,
    LEASE_S,
    WINDOW_S,
    LimitExceeded,
    Limits,
    Reservation,
    check_key,
    check_tokens,
)


@dataclass(slots=True)
class _Entry:
    id: str
    at: float
    tokens: int


@dataclass(slots=True)
class _Key:
    log: deque[_Entry] = field(default_factory=deque)
    by_id: dict[str, _Entry] = field(default_factory=dict)
    tokens: int = 0
    in_flight: dict[str, float] = field(default_factory=dict)  # id -> lease end


class InMemoryLimiter:
    def __init__(self, *, window_s: float = WINDOW_S, lease_s: float = LEASE_S) -> None:
        self._window = window_s
        self._lease = lease_s
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}

    def reserve(
        self, key: str, limits: Limits, *, tokens: int, now: float | None = None
    ) -> Reservation:
        check_key(key)
        check_tokens(tokens)
        with self._lock:
            t = time.monotonic() if now is None else now
            state = self._keys.setdefault(key, _Key())
            self._expire(state, t)
            if limits.concurrency is not None and len(state.in_flight) + 1 > limits.concurrency:
                raise LimitExceeded("concurrency", retry_after_s=CONCURRENCY_RETRY_S)
            if limits.rpm is not None and len(state.log) + 1 > limits.rpm:
                raise LimitExceeded("rpm", retry_after_s=self._rpm_wait(state, limits.rpm, t))
            if limits.tpm is not None and state.tokens + tokens > limits.tpm:
                raise LimitExceeded(
                    "tpm", retry_after_s=self._tpm_wait(state, limits.tpm, tokens, t)
                )
            reservation = Reservation(key=key, tokens=tokens, at=t)
            entry = _Entry(reservation.id, t, tokens)
            state.log.append(entry)
            state.by_id[entry.id] = entry
            state.tokens += tokens
            state.in_flight[entry.id] = t + self._lease
            return reservation

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        actual = max(0, actual_tokens)
        with self._lock:
            state = self._keys.get(reservation.key)
            if state is None:
                return
            entry = state.by_id.get(reservation.id)
            if entry is not None:
                state.tokens += actual - entry.tokens
                entry.tokens = actual
            state.in_flight.pop(reservation.id, None)

    def release(self, reservation: Reservation) -> None:
        with self._lock:
            state = self._keys.get(reservation.key)
            if state is None:
                return
            entry = state.by_id.pop(reservation.id, None)
            if entry is not None:
                state.log.remove(entry)
                state.tokens -= entry.tokens
            state.in_flight.pop(reservation.id, None)

    def _expire(self, state: _Key, now: float) -> None:
        edge = now - self._window
        while state.log and state.log[0].at <= edge:
            entry = state.log.popleft()
            del state.by_id[entry.id]
            state.tokens -= entry.tokens
        for rid in [r for r, end in state.in_flight.items() if end <= now]:
            del state.in_flight[rid]

    def _rpm_wait(self, state: _Key, rpm: int, now: float) -> float:
        # The (len - rpm + 1)-th oldest entry must leave the window.
        index = len(state.log) - rpm
        return max(0.0, state.log[index].at + self._window - now) if index >= 0 else 0.0

    def _tpm_wait(self, state: _Key, tpm: int, tokens: int, now: float) -> float:
        if tokens > tpm:
            return self._window  # never fits; the client must send a smaller request
        used = state.tokens
        for entry in state.log:
            used -= entry.tokens
            if used + tokens <= tpm:
                return max(0.0, entry.at + self._window - now)
        return self._window
