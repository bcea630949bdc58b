"""Step 4: admission control — rate limits, budgets, concurrency — for every /v1 call.

Every call of a tenant principal to the model API (models, files, chat,
completions, embeddings) is admitted here: requests count for all of them,
tokens for the model calls.  The reservation is settled with the actual
usage when the call is over, or released in full when it failed (an error,
or a status of 400 and above), and the rate-limit headers go out with the
response.

A small body is checked for its shape (`validate`), counted and admitted
right here (the fast path).  For a large one the cheap checks come first:
the tenant's body limit, `max_tokens` and a probe of the limiter (could a
call of this completion be admitted at all?); then, on a worker thread
(`Offload`), its shape and the input guard's bounds on text are checked
and its prompt counted: a body that will be refused is never tokenised,
and none is tokenised on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulkhead.gateway import validate
from bulkhead.gateway.offload import Offload, job_owner
from bulkhead.guard import MAX_SCAN_CHARS, MAX_SCAN_TEXTS, check_text_bounds
from bulkhead.limits import Admission, Ticket
from bulkhead.web.scope import (
    CONTEXT,
    JSON,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    context,
    exchange,
    raw_body,
)

TICKET = "bulkhead.ticket"
ENDPOINTS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
SHAPES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "chat": validate.chat,
    "completions": validate.completions,
    "embeddings": validate.embeddings,
}


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, admission: Admission, offload: Offload | None = None):
        self.app = app
        self.admission = admission
        self.offload = offload or Offload()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or CONTEXT not in scope or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        ticket = await self._admit(scope)
        scope[TICKET] = ticket
        try:
            await self.app(scope, receive, _with_headers(send, ticket))
        except BaseException:
            ticket.release()
            raise
        settle(scope, ticket)

    async def _admit(self, scope: Scope) -> Ticket:
        ctx, endpoint = context(scope), ENDPOINTS.get(scope["path"])
        body: dict[str, Any] = scope.get(JSON) or {}
        size = len(raw_body(scope))
        if endpoint is None:
            return self.admission.admit(ctx, None, body, size)
        if self.offload.small(size):
            SHAPES[endpoint](body)
            scope[validate.CHECKED] = True
            return self.admission.admit(ctx, endpoint, body, size)
        self.admission.precheck(ctx, endpoint, body, size)
        prompt = await self.offload.run(job_owner(scope), size, self._count, endpoint, body)
        scope[validate.CHECKED] = True
        return self.admission.admit(ctx, endpoint, body, size, prompt=prompt)

    def _count(self, endpoint: str, body: dict[str, Any]) -> int:
        """The prompt's tokens, once the body has the shape the endpoint takes and no more
        text than the input guard scans (which refuses the rest after admission)."""
        SHAPES[endpoint](body)
        check_text_bounds(body, max_chars=MAX_SCAN_CHARS, max_texts=MAX_SCAN_TEXTS)
        return self.admission.count(endpoint, body)


def settle(scope: Scope, ticket: Ticket) -> None:
    ex = exchange(scope)
    if 0 < ex.status < 400:
        ticket.settle(ex.prompt_tokens, ex.completion_tokens)
    else:
        ticket.release()


def _with_headers(send: Send, ticket: Ticket) -> Send:
    if not ticket.headers:
        return send

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *ticket.headers]
        await send(message)

    return send_with_headers
