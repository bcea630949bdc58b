"""Where model calls go: upstream clients and local worker processes."""

from bulkhead.runtime.upstream import Target, UpstreamClient
from bulkhead.runtime.workers import WorkerSpec, WorkerSupervisor

__all__ = ["Target", "UpstreamClient", "WorkerSpec", "WorkerSupervisor"]
