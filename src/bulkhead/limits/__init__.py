"""Admission (rate limits and budgets, later) and token usage accounting."""

from bulkhead.limits.admission import Admission, Ticket, Unlimited
from bulkhead.limits.usage import UsageLedger

__all__ = ["Admission", "Ticket", "Unlimited", "UsageLedger"]
