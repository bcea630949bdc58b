"""The limiter interface: per-key requests, tokens and concurrency, checked atomically.

A key names what is limited, built by the caller: ``tenant:<id>`` or
``tenant:<id>:key:<id>`` (the tenant id is always part of it, so two tenants
never share a budget).  `Limiter.reserve` admits one call against `Limits` or
raises `LimitExceeded`; the `Reservation` it returns is later either
`settle`d with the actual token count or `release`d in full when the call
failed.

The window is a **sliding log** of the last `WINDOW_S` seconds: every admitted
request is one entry (its time and its token count).  A request is admitted
only if, counting the entries still inside the window,

* entries + 1 <= rpm, and
* sum(tokens) + tokens <= tpm, and
* calls in flight + 1 <= concurrency.

Check and insert happen under one lock (in memory) or in one Lua script
(Redis), so concurrent reservations are serialised and the limits are exact:
in *any* 60 s window the admitted requests never exceed rpm and the reserved
tokens never exceed tpm, however many replicas share the store.  A token
bucket or GCRA was not chosen because it lets a full bucket plus its refill
through within one window (up to about twice the limit per minute); the log
costs one entry per admitted request, which is bounded by rpm (or by the
request rate when only tpm is set).

`settle` replaces a reservation's estimate with the actual count (a refund or
a charge, never below zero); a charge may take the key over tpm, and later
reservations wait until it drops out of the window.  Calls in flight are held
under a lease (`LEASE_S`), so a replica that dies mid-call leaks its slot only
until the lease ends.

A store that cannot be reached fails closed: `LimiterUnavailable`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from bulkhead.errors import RateLimited, Unavailable

WINDOW_S = 60.0
LEASE_S = 600.0
CONCURRENCY_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-minute requests and tokens and calls in flight; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "concurrency"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None")


@dataclass(frozen=True, slots=True)
class Reservation:
    """One admitted call: what it reserved, to be settled or released exactly once."""

    key: str
    tokens: int
    at: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class LimitExceeded(RateLimited):
    """A limit denied the call; `limit` says which ("rpm", "tpm" or "concurrency")."""

    def __init__(self, limit: str, *, retry_after_s: float):
        super().__init__(f"rate limit exceeded ({limit})", retry_after_s=retry_after_s)
        self.limit = limit


class LimiterUnavailable(Unavailable):
    """The limiter's store cannot be reached; the call is refused (fail closed)."""


class Limiter(Protocol):
    def reserve(
        self, key: str, limits: Limits, *, tokens: int, now: float | None = None
    ) -> Reservation:
        """Admit one call of `tokens` estimated tokens, or raise `LimitExceeded`."""

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Charge the actual count instead of the estimate and free the slot."""

    def release(self, reservation: Reservation) -> None:
        """Refund the call in full (request and tokens) and free the slot."""


def check_key(key: str) -> None:
    if not key or any(c in key for c in "{}\n\r\0"):
        raise ValueError("a limiter key must be non-empty and contain no braces")


def check_tokens(tokens: int) -> None:
    if tokens < 0:
        raise ValueError("tokens must be >= 0")
