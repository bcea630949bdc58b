"""The admission interface the gateway calls before each model call.

`Unlimited` is the embedded default until quotas arrive: it admits every
call.  A limiter returns a `Ticket` that is settled with the actual usage
after the call, so reservations can be reconciled.
"""

from __future__ import annotations

from typing import Protocol

from bulkhead.domain import TenantContext


class Ticket(Protocol):
    def settle(self, prompt_tokens: int, completion_tokens: int) -> None: ...


class Admission(Protocol):
    def admit(self, ctx: TenantContext, model: str, body: dict[str, object]) -> Ticket:
        """Return a ticket, or raise `RateLimited`."""


class _FreeTicket:
    def settle(self, prompt_tokens: int, completion_tokens: int) -> None:
        return None


class Unlimited:
    _ticket = _FreeTicket()

    def admit(self, ctx: TenantContext, model: str, body: dict[str, object]) -> Ticket:
        return self._ticket
