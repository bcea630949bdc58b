"""Audit events and where they go.  The tamper-evident Merkle log builds on this."""

from bulkhead.audit.events import AuditEvent
from bulkhead.audit.sink import AuditSink, JsonlSink

__all__ = ["AuditEvent", "AuditSink", "JsonlSink"]
