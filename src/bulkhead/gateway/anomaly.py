"""Abuse and anomaly detection: refuse throttled keys, feed each finished request to the detector.

The layer sits right after the tenant context, so every later refusal —
policy 403s, limit 429s, 404s on ids the caller cannot see, guard blocks —
passes through it, and after the call it reads the body as the body layer
parsed it.  Prompts reach the detector only as in-process hashes.  A broken
detector costs a line in the log, never the request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bulkhead.domain import TenantContext
from bulkhead.errors import status_of
from bulkhead.gateway.endpoints import endpoint_of
from bulkhead.guard import asks_for_logprobs
from bulkhead.guard.anomaly import AnomalyDetector
from bulkhead.web.scope import CONTEXT, EXCHANGE, JSON, ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("bulkhead.gateway")

_MAX_PARTS = 8


class AnomalyMiddleware:
    def __init__(self, app: ASGIApp, *, detector: AnomalyDetector | None):
        self.app = app
        self.detector = detector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx: TenantContext | None = scope.get(CONTEXT) if scope["type"] == "http" else None
        detector = self.detector
        if detector is None or ctx is None or ctx.tenant is None:
            await self.app(scope, receive, send)
            return
        # Management stays open to a throttled key's tenant, so an admin can still revoke it.
        if scope["path"].startswith("/v1/"):
            detector.check(ctx)
        status = 0

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception as exc:
            status = status or status_of(exc)[0]
            raise
        finally:
            if status:
                self._observe(detector, scope, ctx, status)

    def _observe(
        self, detector: AnomalyDetector, scope: Scope, ctx: TenantContext, status: int
    ) -> None:
        body: Mapping[str, Any] = scope.get(JSON) or {}
        ex = scope.get(EXCHANGE)
        tokens = (ex.prompt_tokens or 0) + (ex.completion_tokens or 0) if ex is not None else 0
        path = scope["path"]
        # Prompts that generate are compared for diversity; embeddings inputs are diverse.
        endpoint = endpoint_of(scope)
        generates = endpoint is not None and endpoint.generates
        try:
            detector.observe(
                ctx,
                status=status,
                tokens=tokens,
                prompt_digest=prompt_digest(body) if generates else None,
                logprobs=wants_logprobs(body),
                max_tokens=max_tokens(body),
                not_found_digest=hash((path, _name(body))) if status == 404 else None,
            )
        except Exception as exc:
            log.error("anomaly detector failed: %s", type(exc).__name__)


def _name(body: Mapping[str, Any]) -> str | None:
    """The model a refused call named; None for a value that is not a name (a list is not
    hashable, and the detector must see the refusal all the same)."""
    model = body.get("model")
    return model if isinstance(model, str) else None


def prompt_digest(body: Mapping[str, Any]) -> int | None:
    """An in-process hash of what varies between prompts: the last message, or the prompt."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return _digest(messages[-1].get("content"))
    return _digest(body.get("prompt"))


def _digest(content: object) -> int | None:
    if isinstance(content, str):
        return hash(content)
    if isinstance(content, list):
        # Message parts ({"type": "text", "text": ...}) or a batch of prompts: the first few.
        texts = (p.get("text") if isinstance(p, dict) else p for p in content[:_MAX_PARTS])
        return hash(tuple(t for t in texts if isinstance(t, str | int)))
    return None


def wants_logprobs(body: Mapping[str, Any]) -> bool:
    """Asked for log probabilities (refused or not: the attempt is what counts)."""
    # The guard's own test: completions' `logprobs: 0` and `prompt_logprobs` ask for them too.
    return asks_for_logprobs(body) is not None


def max_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None
