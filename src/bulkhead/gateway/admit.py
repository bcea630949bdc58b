"""Step 4: admission control — rate limits, budgets, concurrency — for every /v1 call.

Every call of a tenant principal to the model API (models, files, chat,
completions, embeddings) is admitted here: requests count for all of them,
tokens for the model calls.  The reservation is settled with the actual
usage when the call is over, or released in full when it failed (an error,
or a status of 400 and above), and the rate-limit headers go out with the
response.

The body has been validated (`gateway.validation`) before it gets here.
A small one is counted and admitted right here (the fast path).  For a
large one the cheap checks come first: the tenant's body limit, `max_tokens`
and a probe of the limiter (could a call of this completion be admitted at
all?); then its prompt is counted on a worker thread (`Offload`): a body
that will be refused is never tokenised, and none is tokenised on the event
loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bulkhead.gateway.endpoints import endpoint_of
from bulkhead.gateway.offload import Offload, job_owner
from bulkhead.limits import Admission, LimiterUnavailable, O200kCounter, Ticket, count_weight
from bulkhead.web.scope import (
    CONTEXT,
    JSON,
    NESTED,
    TICKET,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    context,
    exchange,
    raw_body,
    set_once,
)

log = logging.getLogger("bulkhead.gateway")


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, admission: Admission, offload: Offload | None = None):
        self.app = app
        self.admission = admission
        self.offload = offload or Offload()
        # A slower token counter counts less on the event loop (`limits.count_weight`).
        counter = getattr(admission, "counter", None)
        self.weight = count_weight(counter)
        self.encoder = counter if isinstance(counter, O200kCounter) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or CONTEXT not in scope or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        ticket = await self._admit(scope)
        set_once(scope, TICKET, ticket)
        try:
            await self.app(scope, receive, _with_headers(send, ticket))
        except BaseException:
            _lapse(ticket.release)
            raise
        finally:
            self._build_encoder()
        settle(scope, ticket)

    def _build_encoder(self) -> None:
        """After the first call's answer, build the token encoder on this (the event loop's)
        thread, once: its 0.2-0.3 s then falls after the first answer, not before it;
        calls admitted meanwhile reserve an upper bound of their prompt
        (`LimitAdmission`).  On this thread, its memory sits in the main arena (5 MB less
        resident than on a worker thread, docs/benchmarks.md, session 14)."""
        if self.encoder is not None and not self.encoder.ready:
            build, self.encoder = self.encoder.build_here, None
            asyncio.get_running_loop().call_soon(build)

    async def _admit(self, scope: Scope) -> Ticket:
        ctx, endpoint = context(scope), endpoint_of(scope)
        counted = endpoint.counted if endpoint is not None else None
        generates = endpoint is not None and endpoint.generates
        body: dict[str, Any] = scope.get(JSON) or {}
        size = len(raw_body(scope))
        nested = scope.get(NESTED) is True  # set by the gateway itself, never by a client
        if counted is None or self.offload.small(size * self.weight):
            return self.admission.admit(
                ctx, counted, body, size, generates=generates, nested=nested
            )
        self.admission.precheck(ctx, counted, body, size, generates=generates, nested=nested)
        owner = job_owner(scope)
        prompt = await self.offload.run(owner, size, self.admission.count, counted, body)
        return self.admission.admit(
            ctx, counted, body, size, generates=generates, prompt=prompt, nested=nested
        )


def settle(scope: Scope, ticket: Ticket) -> None:
    ex = exchange(scope)  # its status was recorded by the outermost layer as it went out
    if 0 < ex.status < 400:
        _lapse(lambda: ticket.settle(ex.prompt_tokens, ex.completion_tokens))
    else:
        _lapse(ticket.release)


def _lapse(done: Callable[[], None]) -> None:
    """Settle or release; if the limiter went away meanwhile, the reservation lapses.

    The answer is out (or the call failed on its own): a limiter lost during
    the call (Redis restarted) must not turn it into a dropped connection.
    The reservation ends with its lease in the limiter, and the next call
    is refused (fail closed) until the limiter is back.
    """
    try:
        done()
    except LimiterUnavailable:
        log.warning("limiter unavailable after a call: its reservation lapses with its lease")


def _with_headers(send: Send, ticket: Ticket) -> Send:
    if not ticket.headers:
        return send

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *ticket.headers]
        await send(message)

    return send_with_headers
