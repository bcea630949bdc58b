"""Admission (rate limits and budgets, later) and token usage accounting."""

from bulkhead.limits.admission import Admission, Ticket, Unlimited
from bulkhead.limits.limiter import (
    Limiter,
    LimiterUnavailable,
    LimitExceeded,
    Limits,
    Reservation,
)
from bulkhead.limits.memory import InMemoryLimiter
from bulkhead.limits.usage import UsageLedger

__all__ = [
    "Admission",
    "InMemoryLimiter",
    "LimitExceeded",
    "Limiter",
    "LimiterUnavailable",
    "Limits",
    "Reservation",
    "Ticket",
    "Unlimited",
    "UsageLedger",
]
