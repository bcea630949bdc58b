"""The upstream client with a span for each upstream or worker call, when tracing is on.

A subclass the app builds instead of `UpstreamClient` only when tracing is
configured, so the plain client pays nothing for it.  Each call is a CLIENT span,
a child of the chain's innermost span, and the request it sends carries one
`traceparent` naming that span (`observe.tracing.outgoing`): the trace id, the
span id and the sampled flag, nothing else; any trace header a deployment's own
headers hold is dropped, and no `tracestate` or `baggage` is ever sent, so an
upstream (a tenant's, or a provider's) learns nothing of the tenant from it.
The span's attributes say which kind of server (`worker`, the platform's
`upstream`, a tenant's `tenant_upstream`) and which API path, never its address
or the request: a tenant's upstream's address is the tenant's configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator
from typing import Any

from bulkhead.observe.tracing import CLIENT, Tracing, outgoing
from bulkhead.runtime.upstream import Batch, Target, UpstreamClient

WORKER_URL = "http://worker/v1"  # `WorkerSupervisor.target`'s


class TracedUpstreamClient(UpstreamClient):
    def __init__(self, *, tracing: Tracing, **options: Any) -> None:
        super().__init__(**options)
        self.tracing = tracing

    async def call(self, target: Target, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self.tracing.detached(_name(target), CLIENT, _attributes(target, path)) as span:
            headers = outgoing(target.headers, span)
            return await super().call(dataclasses.replace(target, headers=headers), path, payload)

    async def stream(
        self, target: Target, path: str, payload: dict[str, Any]
    ) -> AsyncGenerator[Batch]:
        attributes = {**_attributes(target, path), "bulkhead.stream": True}
        with self.tracing.detached(_name(target), CLIENT, attributes) as span:
            traced = dataclasses.replace(target, headers=outgoing(target.headers, span))
            async with contextlib.aclosing(super().stream(traced, path, payload)) as batches:
                async for batch in batches:
                    yield batch

    async def stop_tracing(self) -> None:
        """Export the spans still queued (within the exporter's timeout, off the event loop).
        The application calls it last, once its audit log is committed: a collector that
        does not answer must not hold that commit back."""
        await asyncio.to_thread(self.tracing.shutdown)


def _name(target: Target) -> str:
    return "worker.call" if _kind(target) == "worker" else "upstream.call"


def _kind(target: Target) -> str:
    if target.unix_socket is not None and target.base_url == WORKER_URL:
        return "worker"
    return "tenant_upstream" if target.opaque else "upstream"


def _attributes(target: Target, path: str) -> dict[str, Any]:
    return {"bulkhead.upstream.kind": _kind(target), "bulkhead.upstream.path": path}
