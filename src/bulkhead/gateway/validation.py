"""Step 3b: the whole OpenAI body checked, and its defaults filled, before anything uses it.

Right after authorization and before admission: nothing downstream (the
token counter, the limiter, the guards, the upstream) sees a body its
endpoint does not take, and admission never reserves for a body that will
be refused.  Every error names the field by the client's own path
(`messages[0].content`), before the input guard inserts its canary.

The checks are the endpoint's validator (`gateway.validate`), and, for a
body the guards scan, their bounds on text (a body with more text than they
scan is refused here, 413, never passed on unscanned).  Then the tier's
`max_tokens` default is written in when the call names no length.  A large
body is checked on a worker thread (`Offload`), never on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulkhead.domain import TenantContext
from bulkhead.gateway import validate
from bulkhead.gateway.endpoints import V1Endpoint, endpoint_of
from bulkhead.gateway.offload import Offload, job_owner
from bulkhead.guard import MAX_SCAN_CHARS, MAX_SCAN_TEXTS, check_text_bounds
from bulkhead.web.scope import ASGIApp, Receive, Scope, Send, context, json_body, raw_body

DefaultLength = Callable[[TenantContext], int | None]


def _none(ctx: TenantContext) -> int | None:
    return None


class ValidationMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        default_length: DefaultLength = _none,
        offload: Offload | None = None,
    ):
        self.app = app
        self.default_length = default_length  # the tier's (and key's) max_tokens default
        self.offload = offload or Offload()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = endpoint_of(scope) if scope["type"] == "http" else None
        if endpoint is not None and endpoint.validator is not None:
            body, size = json_body(scope), len(raw_body(scope))
            default = self.default_length(context(scope)) if endpoint.generates else None
            if self.offload.small(size):  # the common path: no bounds to reach, no thread hop
                check(endpoint, body, default, bounded=False)
            else:
                owner = job_owner(scope)
                await self.offload.run(owner, size, check, endpoint, body, default, bounded=True)
        await self.app(scope, receive, send)


def check(
    endpoint: V1Endpoint, body: dict[str, Any], default: int | None, *, bounded: bool = True
) -> None:
    """Refuse a body `endpoint` does not take; fill in its default length.

    `bounded`: also the guards' bounds on text, which a body within the offload's inline
    bound (16 KiB) cannot pass (1 MiB of text, 16,384 texts), so it skips the walk."""
    assert endpoint.validator is not None
    endpoint.validator(body)
    if bounded and endpoint.guarded:
        check_text_bounds(body, max_chars=MAX_SCAN_CHARS, max_texts=MAX_SCAN_TEXTS)
    if endpoint.generates:
        validate.fill_length(body, default)
