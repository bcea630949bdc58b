"""Where model calls go: upstream clients and local worker processes."""

from bulkhead.runtime._worker_state import WorkerSpec
from bulkhead.runtime.upstream import ENGINE_OPTION, PEER_ID_OPTION, Target, UpstreamClient
from bulkhead.runtime.workers import WorkerSupervisor

__all__ = [
    "ENGINE_OPTION",
    "PEER_ID_OPTION",
    "Target",
    "UpstreamClient",
    "WorkerSpec",
    "WorkerSupervisor",
]
