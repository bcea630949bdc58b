"""The interfaces the gateway's guard steps call; checks raise, they don't return bools."""

from __future__ import annotations

from typing import Any, Protocol

from bulkhead.domain import TenantContext


class InputGuard(Protocol):
    def check(self, ctx: TenantContext, body: dict[str, Any]) -> None:
        """Inspect (and possibly rewrite) a request body; raise to refuse it."""


class OutputGuard(Protocol):
    def filter(self, ctx: TenantContext, text: str) -> str:
        """Return the text to send to the caller; raise to stop the response."""
