"""The limiter interface: requests, tokens, budgets and concurrency, checked atomically.

One call is checked against several *scopes* at once — typically the tenant
and the API key — that live in one *bucket* (the tenant: its id is part of
every key, so two tenants never share a budget).  `Limiter.reserve` admits
the call in every scope or in none, and raises `LimitExceeded` naming the
scope and the limit that refused it; the `Reservation` it returns is later
either `settle`d with the actual token count or `release`d in full when the
call failed.

Per-minute limits use a **sliding log** of the last `WINDOW_S` seconds: every
admitted request is one entry (its time and its token count).  A request is
admitted in a scope only if, counting the entries still inside the window,

* entries + 1 <= rpm, and
* sum(tokens) + tokens <= tpm, and
* calls in flight + 1 <= concurrency, and
* this UTC day's tokens + tokens <= tokens_per_day (and likewise per month).

Check and insert happen under one lock (in memory) or in one Lua script
(Redis), so concurrent reservations are serialised and the limits are exact:
in *any* 60 s window the admitted requests never exceed rpm and the reserved
tokens never exceed tpm, however many replicas share the store.  A token
bucket or GCRA was not chosen because it lets a full bucket plus its refill
through within one window (up to about twice the limit per minute); the log
costs one entry per admitted request, which is bounded by rpm (or by the
request rate when only tpm is set).  Day and month budgets are plain counters
per calendar period (UTC), named by the caller's clock.

`settle` replaces a reservation's estimate with the actual count (a refund or
a charge, never below zero); a charge may take a scope over its limit, and
later reservations wait until it drops out of the window.  Calls in flight
are held under a lease (`LEASE_S`), so a replica that dies mid-call leaks its
slot only until the lease ends.

A store that cannot be reached fails closed: `LimiterUnavailable`.
"""

from __future__ import annotations

import calendar
import functools
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from bulkhead.errors import RateLimited, Unavailable

WINDOW_S = 60.0
LEASE_S = 600.0
CONCURRENCY_RETRY_S = 1.0
LIMIT_NAMES = ("rpm", "tpm", "concurrency", "tokens_per_day", "tokens_per_month")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one scope may use; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None

    unlimited: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None")
        # Computed once: it is asked on every call.
        object.__setattr__(self, "unlimited", all(getattr(self, n) is None for n in LIMIT_NAMES))


# The value objects below are made on every call: plain slotted classes, as a frozen
# dataclass's __init__ costs several times more.  Treat them as read-only.


@dataclass(slots=True)
class Usage:
    """One scope's use right after an admission, for the rate-limit headers."""

    requests: int  # entries in the window, this call included
    tokens: int  # tokens in the window, this call's estimate included
    oldest_at: float  # when the oldest entry was admitted (it leaves first)


@dataclass(slots=True)
class Periods:
    """The calendar day and month (UTC) a reservation's budget counts against."""

    day: str
    month: str
    day_ends_in_s: float
    month_ends_in_s: float

    @classmethod
    def at(cls, wall: float) -> Periods:
        day_index = int(wall // 86400)
        day, month, day_end, month_end = _calendar(day_index)
        return cls(
            day=day, month=month, day_ends_in_s=day_end - wall, month_ends_in_s=month_end - wall
        )

    @classmethod
    def now(cls) -> Periods:
        return cls.at(time.time())


@functools.lru_cache(maxsize=4)
def _calendar(day_index: int) -> tuple[str, str, float, float]:
    """Names and ends (epoch seconds) of the UTC day and month of a day number; cached."""
    moment = datetime.fromtimestamp(day_index * 86400, UTC)
    last = calendar.monthrange(moment.year, moment.month)[1]
    month_end = calendar.timegm((moment.year, moment.month, last, 0, 0, 0)) + 86400
    day_end = (day_index + 1) * 86400
    return moment.strftime("%Y%m%d"), moment.strftime("%Y%m"), float(day_end), float(month_end)


@dataclass(slots=True, weakref_slot=True)
class Reservation:
    """One admitted call: what it reserved, to be settled or released exactly once.

    A shared limiter renews its lease while the object lives (a weak reference):
    one dropped without being settled stops holding its slot after one lease."""

    bucket: str
    scopes: tuple[str, ...]
    tokens: int
    at: float
    periods: Periods
    usage: Mapping[str, Usage] = field(default_factory=dict, compare=False)
    id: str = field(default_factory=lambda: new_id())


class LimitExceeded(RateLimited):
    """A limit denied the call: `limit` says which, `scope` where ("tenant", "key", ...)."""

    def __init__(self, limit: str, *, retry_after_s: float, scope: str = ""):
        where = f"{scope} " if scope else ""
        super().__init__(f"Rate limit exceeded ({where}{limit}).", retry_after_s=retry_after_s)
        self.limit = limit
        self.scope = scope


class LimiterUnavailable(Unavailable):
    """The limiter's store cannot be reached; the call is refused (fail closed)."""


class Limiter(Protocol):
    def reserve(
        self,
        bucket: str,
        scopes: Mapping[str, Limits],
        *,
        tokens: int,
        now: float | None = None,
        periods: Periods | None = None,
    ) -> Reservation:
        """Admit one call of `tokens` estimated tokens in every scope, or raise `LimitExceeded`."""

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Charge the actual count instead of the estimate and free the slot."""

    def release(self, reservation: Reservation) -> None:
        """Refund the call in full (request and tokens) and free the slot."""

    def charge(
        self, bucket: str, scopes: Sequence[str], tokens: int, *, periods: Periods | None = None
    ) -> None:
        """Add `tokens` to the day and month budgets of `scopes`, never refused: for work
        already done (training tokens); the minute window is not touched."""

    def close(self) -> None:
        """Let go of the store's connections (at shut-down)."""


def new_id() -> str:
    """A reservation id, unique across replicas (96 random bits)."""
    return os.urandom(12).hex()


_BAD_NAME = re.compile(r"[{}:\n\r\0]|^$")


def check_request(bucket: str, scopes: Mapping[str, Limits], tokens: int) -> None:
    for name in (bucket, *scopes):
        if _BAD_NAME.search(name):
            raise ValueError("bucket and scope names must be non-empty, without braces or ':'")
    if not scopes:
        raise ValueError("a reservation needs at least one scope")
    if tokens < 0:
        raise ValueError("tokens must be >= 0")


def budget_retry(limit: str, periods: Periods) -> float:
    return periods.day_ends_in_s if limit == "tokens_per_day" else periods.month_ends_in_s
