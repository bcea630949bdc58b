"""Metrics and logging."""

from bulkhead.observe.metrics import Metrics

__all__ = ["Metrics"]
