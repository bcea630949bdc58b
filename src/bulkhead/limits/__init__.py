"""Admission: rate limits, token budgets and concurrency per tenant and key.

Usage as reported (`/tenant/v1/usage`) is durable and kept by the store (`store.usage`).
"""

from bulkhead.limits.admission import (
    FREE,
    Admission,
    LimitAdmission,
    Ticket,
    Unlimited,
)
from bulkhead.limits.limiter import (
    Limiter,
    LimiterUnavailable,
    LimitExceeded,
    Limits,
    Periods,
    Reservation,
    Usage,
)
from bulkhead.limits.memory import InMemoryLimiter
from bulkhead.limits.meter import StreamMeter
from bulkhead.limits.policy import CallLimits, call_limits
from bulkhead.limits.tokens import ByteCounter, O200kCounter, TokenCounter, count_weight

__all__ = [
    "FREE",
    "Admission",
    "ByteCounter",
    "CallLimits",
    "InMemoryLimiter",
    "LimitAdmission",
    "LimitExceeded",
    "Limiter",
    "LimiterUnavailable",
    "Limits",
    "O200kCounter",
    "Periods",
    "Reservation",
    "StreamMeter",
    "Ticket",
    "TokenCounter",
    "Unlimited",
    "Usage",
    "call_limits",
    "count_weight",
]
