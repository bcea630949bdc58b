"""Privileged access management: approvals, time-bound grants, break-glass.

A sensitive operation needs a live grant held by the caller: a request with
a reason, approved by a *different* platform admin, valid until it expires
(and, for destructive actions, for one use).  Break-glass grants at once,
loudly, and on the record.
"""

from bulkhead.pam._service import (
    MAX_BREAK_GLASS_S,
    MAX_DURATION_S,
    MIN_REASON,
    PLATFORM_TARGET,
    PRIVILEGED,
    AccessRequest,
    AccessService,
    Privilege,
    Status,
    refusal,
)

__all__ = [
    "MAX_BREAK_GLASS_S",
    "MAX_DURATION_S",
    "MIN_REASON",
    "PLATFORM_TARGET",
    "PRIVILEGED",
    "AccessRequest",
    "AccessService",
    "Privilege",
    "Status",
    "refusal",
]
