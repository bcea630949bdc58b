"""Where model calls go: upstream clients and local worker processes."""

from bulkhead.runtime.upstream import PEER_ID_OPTION, Target, UpstreamClient
from bulkhead.runtime.workers import WorkerSpec, WorkerSupervisor

__all__ = ["PEER_ID_OPTION", "Target", "UpstreamClient", "WorkerSpec", "WorkerSupervisor"]
