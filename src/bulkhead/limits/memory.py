"""The embedded limiter: a sliding log per scope in this process, under one lock.

Exact for one process; replicas each keep their own log, so N replicas admit
up to N times the limits.  Use `RedisLimiter` to share limits across replicas.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bulkhead.limits.limiter import (
    CONCURRENCY_RETRY_S,
    LEASE_S,
    WINDOW_S,
    LimitExceeded,
    Limits,
    Periods,
    Reservation,
    Usage,
    budget_retry,
    check_request,
)

# Idle scopes are dropped once this many are held, so memory follows live keys only.
_SWEEP_AT = 10_000


@dataclass(slots=True)
class _Entry:
    id: str
    at: float
    tokens: int


@dataclass(slots=True)
class _Scope:
    log: deque[_Entry] = field(default_factory=deque)
    by_id: dict[str, _Entry] = field(default_factory=dict)
    tokens: int = 0
    in_flight: dict[str, float] = field(default_factory=dict)  # id -> lease end
    # period ("d20261126" or "m202611") -> tokens; only the current two are kept.
    budgets: dict[str, int] = field(default_factory=dict)

    def budget(self, period: str) -> int:
        return self.budgets.get(period, 0)


class InMemoryLimiter:
    def __init__(self, *, window_s: float = WINDOW_S, lease_s: float = LEASE_S) -> None:
        self._window = window_s
        self._lease = lease_s
        self._lock = threading.Lock()
        self._scopes: dict[tuple[str, str], _Scope] = {}
        # Reservation ids need only be unique in this limiter (its log never leaves the
        # process): a counter, where `new_id`'s 96 random bits cost a system call a call.
        self._ids = itertools.count(1)

    def reserve(
        self,
        bucket: str,
        scopes: Mapping[str, Limits],
        *,
        tokens: int,
        now: float | None = None,
        periods: Periods | None = None,
    ) -> Reservation:
        check_request(bucket, scopes, tokens)
        p = periods or Periods.now()
        day, month = "d" + p.day, "m" + p.month
        rid = f"m{next(self._ids):x}"
        with self._lock:
            t = time.monotonic() if now is None else now
            states = [(name, self._state(bucket, name, p, t)) for name in scopes]
            for name, state in states:
                self._check(name, state, scopes[name], tokens, t, p)
            usage = {}
            for name, state in states:
                entry = _Entry(rid, t, tokens)
                state.log.append(entry)
                state.by_id[rid] = entry
                state.tokens += tokens
                state.in_flight[rid] = t + self._lease
                state.budgets[day] = state.budgets.get(day, 0) + tokens
                state.budgets[month] = state.budgets.get(month, 0) + tokens
                usage[name] = Usage(len(state.log), state.tokens, state.log[0].at)
        return Reservation(bucket, tuple(scopes), tokens, t, p, usage, rid)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        self._finish(reservation, max(0, actual_tokens), refund_request=False)

    def release(self, reservation: Reservation) -> None:
        self._finish(reservation, 0, refund_request=True)

    def charge(
        self, bucket: str, scopes: Sequence[str], tokens: int, *, periods: Periods | None = None
    ) -> None:
        if tokens <= 0:
            return
        p = periods or Periods.now()
        with self._lock:
            for name in scopes:
                state = self._state(bucket, name, p, time.monotonic())
                for period in ("d" + p.day, "m" + p.month):
                    state.budgets[period] = state.budgets.get(period, 0) + tokens

    def close(self) -> None:
        """Nothing to let go of: the counters live in this process."""

    def _finish(self, reservation: Reservation, actual: int, *, refund_request: bool) -> None:
        p = reservation.periods
        with self._lock:
            for name in reservation.scopes:
                state = self._scopes.get((reservation.bucket, name))
                if state is None:
                    continue
                state.in_flight.pop(reservation.id, None)
                entry = state.by_id.get(reservation.id)
                if entry is None:
                    continue  # it left the window: nothing to correct
                delta = actual - entry.tokens
                for period in ("d" + p.day, "m" + p.month):
                    if period in state.budgets:
                        state.budgets[period] = max(0, state.budgets[period] + delta)
                state.tokens += delta
                entry.tokens = actual
                if refund_request:
                    del state.by_id[entry.id]
                    state.log.remove(entry)

    def _state(self, bucket: str, name: str, p: Periods, now: float) -> _Scope:
        if len(self._scopes) >= _SWEEP_AT:
            self._sweep(now, p)
        state = self._scopes.get((bucket, name))
        if state is None:
            state = self._scopes[(bucket, name)] = _Scope()
        self._expire(state, now)
        if len(state.budgets) > 2:
            current = ("d" + p.day, "m" + p.month)
            for period in [k for k in state.budgets if k not in current]:
                del state.budgets[period]
        return state

    def _check(
        self, name: str, state: _Scope, limits: Limits, tokens: int, now: float, p: Periods
    ) -> None:
        if limits.concurrency is not None and len(state.in_flight) + 1 > limits.concurrency:
            raise LimitExceeded("concurrency", retry_after_s=CONCURRENCY_RETRY_S, scope=name)
        if limits.rpm is not None and len(state.log) + 1 > limits.rpm:
            wait = self._rpm_wait(state, limits.rpm, now)
            raise LimitExceeded("rpm", retry_after_s=wait, scope=name)
        if limits.tpm is not None and state.tokens + tokens > limits.tpm:
            wait = self._tpm_wait(state, limits.tpm, tokens, now)
            raise LimitExceeded("tpm", retry_after_s=wait, scope=name)
        for limit, period in (("tokens_per_day", "d" + p.day), ("tokens_per_month", "m" + p.month)):
            budget = getattr(limits, limit)
            if budget is not None and state.budget(period) + tokens > budget:
                raise LimitExceeded(limit, retry_after_s=budget_retry(limit, p), scope=name)

    def _expire(self, state: _Scope, now: float) -> None:
        edge = now - self._window
        while state.log and state.log[0].at <= edge:
            entry = state.log.popleft()
            del state.by_id[entry.id]
            state.tokens -= entry.tokens
        if state.in_flight:
            for rid in [r for r, end in state.in_flight.items() if end <= now]:
                del state.in_flight[rid]

    def _sweep(self, now: float, p: Periods) -> None:
        current = ("d" + p.day, "m" + p.month)
        for key, state in list(self._scopes.items()):
            self._expire(state, now)
            spent = any(state.budget(period) for period in current)
            if not state.log and not state.in_flight and not spent:
                del self._scopes[key]

    def _rpm_wait(self, state: _Scope, rpm: int, now: float) -> float:
        # The (len - rpm + 1)-th oldest entry must leave the window.
        index = len(state.log) - rpm
        return max(0.0, state.log[index].at + self._window - now) if index >= 0 else 0.0

    def _tpm_wait(self, state: _Scope, tpm: int, tokens: int, now: float) -> float:
        if tokens > tpm:
            return self._window  # never fits; the client must send a smaller request
        used = state.tokens
        for entry in state.log:
            used -= entry.tokens
            if used + tokens <= tpm:
                return max(0.0, entry.at + self._window - now)
        return self._window
