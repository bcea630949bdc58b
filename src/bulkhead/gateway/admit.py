"""Step 4: admission control — rate limits, budgets, concurrency — for every /v1 call.

Every call of a tenant principal to the model API (models, files, chat,
completions, embeddings) is admitted here: requests count for all of them,
tokens for the model calls.  The reservation is settled with the actual
usage when the call is over, or released in full when it failed (an error,
or a status of 400 and above), and the rate-limit headers go out with the
response.
"""

from __future__ import annotations

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


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, admission: Admission):
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or CONTEXT not in scope or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        ticket = self.admission.admit(
            context(scope),
            ENDPOINTS.get(scope["path"]),
            scope.get(JSON) or {},
            len(raw_body(scope)),
        )
        scope[TICKET] = ticket
        try:
            await self.app(scope, receive, _with_headers(send, ticket))
        except BaseException:
            ticket.release()
            raise
        settle(scope, ticket)


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
