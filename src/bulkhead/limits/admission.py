"""The admission the gateway runs before every call: limits checked and tokens reserved.

`LimitAdmission.admit` works out what a call may use (its tenant's limits,
its key's, the tier defaults under them), estimates its tokens — the prompt
counted with the tokenizer plus `max_tokens` (the gateway's validation layer
has filled in the tier's default, `default_max_tokens`, when the client sent
none, so the upstream stops there too) — and reserves
them in the tenant and key scopes at once.  Before the tokenizer is built (the
gateway builds it after its first answer) the prompt is reserved as an upper
bound (`prompt_bound`), counted exactly before any refusal and wherever the
count is charged.  The `Ticket` it returns is
settled with the upstream's actual usage after the call, or released in full
when the call failed, and it meters a stream so the gateway can end it once
the reserved completion tokens are spent.

When the limiter's store is down the call is refused (fail closed), unless
the tenant's configuration says `limits_fail_open`: then the call goes
through unmetered and `on_fail_open` is told — at most once a minute per
tenant — so the operator is alerted and the event audited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bulkhead.domain import TenantContext
from bulkhead.errors import InvalidRequest, PayloadTooLarge, Unavailable
from bulkhead.limits.limiter import (
    Limiter,
    LimiterUnavailable,
    LimitExceeded,
    Limits,
    Reservation,
    Usage,
)
from bulkhead.limits.meter import StreamMeter
from bulkhead.limits.policy import CallLimits, call_limits
from bulkhead.limits.tokens import TokenCounter, prompt_bound, prompt_tokens

Headers = list[tuple[bytes, bytes]]
# What upstreams read as a completion's length: OpenAI's two names (vLLM reads both).  The
# gateway's validation refuses the names other servers read, and the two when they differ.
LENGTHS = ("max_tokens", "max_completion_tokens")
_ALERT_EVERY_S = 60.0


class Ticket(Protocol):
    headers: Headers

    def meter(self) -> StreamMeter | None: ...

    def measured(self, text: str) -> tuple[int, int]:
        """The prompt's tokens as admission counted them, and `text`'s (o200k): the least an
        upstream that cannot be trusted to report its usage (a tenant's own) is charged."""
        ...

    def settle(self, prompt_tokens: int | None, completion_tokens: int | None) -> None: ...

    def release(self) -> None: ...


class Admission(Protocol):
    def admit(
        self,
        ctx: TenantContext,
        endpoint: str | None,
        body: dict[str, Any],
        size: int = 0,
        *,
        generates: bool = False,
        prompt: int | None = None,
        nested: bool = False,
    ) -> Ticket:
        """Return a ticket, or raise `RateLimited` (`InvalidRequest` for a max_tokens over
        the cap, `PayloadTooLarge` for a body of `size` bytes over the tenant's own limit).

        `endpoint` names what the prompt is counted as (`chat`, `completions`,
        `embeddings`; None: nothing); `generates` reserves the completion too.
        `prompt` is the prompt's tokens when the caller counted them (`count`);
        None counts them here.  A `nested` call is made by the gateway inside a call of
        the same credential that holds a concurrency slot already (a vector store
        search embedding its query): it counts requests, tokens and budgets as any
        call, but takes no second slot, so a tenant at concurrency 1 can still search."""

    def default_max_tokens(self, ctx: TenantContext) -> int | None:
        """The completion length a call that names none is given (None: none is set)."""

    def precheck(
        self,
        ctx: TenantContext,
        endpoint: str | None,
        body: dict[str, Any],
        size: int = 0,
        *,
        generates: bool = False,
        nested: bool = False,
    ) -> None:
        """Raise what `admit` would raise without counting the prompt: for a large body,
        which is counted (off the event loop) only if it can be admitted at all."""

    def count(self, endpoint: str | None, body: dict[str, Any]) -> int:
        """The prompt's tokens (0 for endpoints that take no prompt)."""


class FreeTicket:
    """Nothing reserved: platform callers, unlimited tenants, a fail-open outage.

    A stream is still cut once it passes the completion the call asked for
    (`allowance`, when known): an upstream that does not stop (a tenant may
    run its own) costs the gateway no more than a limited tenant's would.
    """

    def __init__(self, allowance: int = 0, counter: TokenCounter | None = None) -> None:
        self.headers: Headers = []
        self._allowance = allowance
        self._counter = counter

    def meter(self) -> StreamMeter | None:
        if not self._allowance or self._counter is None:
            return None
        return StreamMeter(self._counter, self._allowance)

    def measured(self, text: str) -> tuple[int, int]:
        return 0, 0  # Nothing is charged: there is nothing to charge less of.

    def settle(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        return None

    def release(self) -> None:
        return None


FREE = FreeTicket()


class Unlimited:
    """Admits every call: for tests and single-user set-ups that want no limits at all."""

    def admit(
        self,
        ctx: TenantContext,
        endpoint: str | None,
        body: dict[str, Any],
        size: int = 0,
        *,
        generates: bool = False,
        prompt: int | None = None,
        nested: bool = False,
    ) -> Ticket:
        return FREE

    def default_max_tokens(self, ctx: TenantContext) -> int | None:
        return None

    def precheck(
        self,
        ctx: TenantContext,
        endpoint: str | None,
        body: dict[str, Any],
        size: int = 0,
        *,
        generates: bool = False,
        nested: bool = False,
    ) -> None:
        return None

    def count(self, endpoint: str | None, body: dict[str, Any]) -> int:
        return 0


class LimitTicket:
    """A reservation, settled or released exactly once."""

    def __init__(
        self,
        limiter: Limiter,
        reservation: Reservation,
        *,
        prompt: int,
        allowance: int,
        counter: TokenCounter,
        headers: Headers,
        exact: Callable[[], int] | None = None,
    ):
        """`prompt` is what was reserved for the prompt: its tokens, or, when `exact` is
        given (the encoder was still being built), an upper bound that `exact` counts."""
        self._limiter = limiter
        self._reservation = reservation
        self._prompt = prompt
        self._exact = exact
        self._allowance = allowance
        self._counter = counter
        self._done = False
        self.headers = headers

    def meter(self) -> StreamMeter | None:
        return StreamMeter(self._counter, self._allowance) if self._allowance else None

    def measured(self, text: str) -> tuple[int, int]:
        return self._prompt_tokens(), self._counter.count(text) if text else 0

    def settle(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        if self._done:
            return
        self._done = True
        # An upstream that reports no usage is charged the prompt's tokens and what was
        # reserved for the completion.
        prompt = self._prompt_tokens() if prompt_tokens is None else prompt_tokens
        completion = self._allowance if completion_tokens is None else completion_tokens
        self._limiter.settle(self._reservation, prompt + completion)

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._limiter.release(self._reservation)

    def _prompt_tokens(self) -> int:
        """The prompt's tokens: counted now, once, if admission reserved a bound (kept, never
        less than the count, if the encoder failed to build: the call was served)."""
        if self._exact is not None:
            exact, self._exact = self._exact, None
            with contextlib.suppress(Unavailable):  # the counter logged its failure
                self._prompt = exact()
        return self._prompt


class LimitAdmission:
    def __init__(
        self,
        limiter: Limiter,
        counter: TokenCounter,
        *,
        key_quotas: Callable[[str], Mapping[str, Any] | None],
        on_fail_open: Callable[[TenantContext], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limiter = limiter
        self.counter = counter
        self._key_quotas = key_quotas
        self._on_fail_open = on_fail_open
        self._clock = clock
        self._alerted: dict[str, float] = {}
        self._lock = threading.Lock()
        self._cache: dict[
            tuple[str, str], tuple[object, object, CallLimits, dict[str, Limits] | None]
        ] = {}

    def limits_for(self, ctx: TenantContext) -> CallLimits:
        """The call limits of this tenant and key, cached until either object changes."""
        return self._entry(ctx)[0]

    def _entry(self, ctx: TenantContext) -> tuple[CallLimits, dict[str, Limits] | None]:
        """The call limits and the scopes to reserve in (None: nothing to count)."""
        tenant = ctx.tenant
        assert tenant is not None
        quotas = self._key_quotas(ctx.credential_id)
        cached = self._cache.get((tenant.id, ctx.credential_id))
        if cached is not None and cached[0] is tenant and cached[1] is quotas:
            return cached[2], cached[3]
        found = call_limits(tenant.tier, tenant.quotas, quotas)
        scopes = {"tenant": found.tenant}
        if found.key is not None:
            scopes["key-" + ctx.credential_id] = found.key
        counted = None if all(s.unlimited for s in scopes.values()) else scopes
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[(tenant.id, ctx.credential_id)] = (tenant, quotas, found, counted)
        return found, counted

    def admit(
        self,
        ctx: TenantContext,
        endpoint: str | None,
        body: dict[str, Any],
        size: int = 0,
        *,
        generates: bool = False,
        prompt: int | None = None,
        nested: bool = False,
    ) -> Ticket:
        if ctx.tenant is None:
            return FREE
        limits, scopes = self._entry(ctx)
        if nested:
            scopes = _without_concurrency(scopes)
        check_size(limits, size)
        allowance = completion_allowance(limits, body) if generates else 0
        if scopes is None:
            # Nothing to count; max_tokens was still checked against the cap, and meters a stream.
            return FreeTicket(allowance, self.counter) if allowance else FREE
        exact = None
        if prompt is None:
            prompt, exact = prompt_bound(self.counter, endpoint, body)
        try:
            reservation = self._reserve(ctx, scopes, prompt + allowance)
        except LimitExceeded:
            if exact is None:
                raise
            # The bound did not fit: count exactly (waiting for the encoder) before refusing.
            prompt, exact = exact(), None
            reservation = self._reserve(ctx, scopes, prompt + allowance)
        if reservation is None:
            return FreeTicket(allowance, self.counter) if allowance else FREE
        return LimitTicket(
            self.limiter,
            reservation,
            prompt=prompt,
            allowance=allowance,
            counter=self.counter,
            headers=granted_headers(scopes, reservation),
            exact=exact,
        )

    def default_max_tokens(self, ctx: TenantContext) -> int | None:
        return None if ctx.tenant is None else self._entry(ctx)[0].default_max_tokens

    def precheck(
        self,
        ctx: TenantContext,
        endpoint: str | None,
        body: dict[str, Any],
        size: int = 0,
        *,
        generates: bool = False,
        nested: bool = False,
    ) -> None:
        """The body limit, max_tokens, and whether the limits leave room for the call at
        all: a reservation of its completion alone, released at once."""
        if ctx.tenant is None:
            return
        limits, scopes = self._entry(ctx)
        if nested:
            scopes = _without_concurrency(scopes)
        check_size(limits, size)
        allowance = completion_allowance(limits, body) if generates else 0
        if scopes is not None:
            probe = self._reserve(ctx, scopes, allowance)
            if probe is not None:
                self.limiter.release(probe)

    def count(self, endpoint: str | None, body: dict[str, Any]) -> int:
        if endpoint is None:
            return 0
        return prompt_tokens(self.counter, endpoint, body)

    def _reserve(
        self, ctx: TenantContext, scopes: dict[str, Limits], tokens: int
    ) -> Reservation | None:
        """A reservation in every scope, or None when the limiter is down and the tenant
        fails open; raises `LimitExceeded` (with its headers) or `LimiterUnavailable`."""
        assert ctx.tenant is not None
        try:
            return self.limiter.reserve(ctx.tenant.id, scopes, tokens=tokens)
        except LimitExceeded as exc:
            exc.headers = denied_headers(scopes, exc)
            raise
        except LimiterUnavailable:
            if not ctx.tenant.config.limits_fail_open:
                raise
            self.fail_open(ctx)
            return None

    def fail_open(self, ctx: TenantContext) -> None:
        """Tell `on_fail_open` that `ctx`'s tenant goes through unmetered: at most once a
        minute per tenant (the shared capacity calls it too)."""
        assert ctx.tenant is not None
        now = self._clock()
        with self._lock:
            last = self._alerted.get(ctx.tenant.id)
            if last is not None and now - last < _ALERT_EVERY_S:
                return
            self._alerted[ctx.tenant.id] = now
        self._on_fail_open(ctx)


def check_size(limits: CallLimits, size: int) -> None:
    if limits.max_body_bytes is not None and size > limits.max_body_bytes:
        raise PayloadTooLarge(f"Request body exceeds the limit of {limits.max_body_bytes} bytes.")


def completion_allowance(limits: CallLimits, body: dict[str, Any]) -> int:
    """The tokens a call may generate: its length limit times the sequences it asks for.

    The length is `max_tokens` or `max_completion_tokens` (the validation
    layer refused a body that sends both with different values, or the names
    other servers read, and wrote the tier's default in when neither was
    sent): what is forwarded is what was checked against the cap and
    reserved.  The sequences are `n`, or `best_of` when larger (vLLM
    generates that many), for each prompt of a batch of completions (`prompt`
    a list of texts or of token lists).

    A value of the wrong type (which validation refuses first) or none at
    all is estimated at the default.
    """
    sent = [name for name in LENGTHS if body.get(name) is not None]
    field = sent[0] if sent else "max_tokens"
    requested = body.get(field)
    if requested is None or not _whole(requested):
        requested = limits.default_max_tokens
    cap = limits.max_tokens_per_request
    if cap is not None and requested > cap:
        raise InvalidRequest(f"{field} may be at most {cap} for this key.", param=field)
    n, best_of = body.get("n"), body.get("best_of")
    prompts = _prompts(body.get("prompt"))
    if n is None and best_of is None:
        return int(requested) * prompts
    return int(requested) * max(_sequences(n), _sequences(best_of)) * prompts


def _prompts(prompt: object) -> int:
    """Completions generate for each prompt of a list of texts or token lists."""
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        return len(prompt)
    return 1


def _sequences(value: object) -> int:
    return value if isinstance(value, int) and _whole(value) and value > 1 else 1


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _reset(seconds: float) -> bytes:
    """A duration the way OpenAI writes it: "1s", "6m0s", "250ms"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms".encode()
    minutes, rest = divmod(round(seconds), 60)
    return (f"{minutes}m{rest}s" if minutes else f"{rest}s").encode()


def granted_headers(scopes: Mapping[str, Limits], reservation: Reservation) -> Headers:
    """x-ratelimit-* for the scope with the least left (requests and tokens apart)."""
    usage = reservation.usage
    requests: tuple[int, int, Usage] | None = None  # (left, limit, usage)
    tokens: tuple[int, int, Usage] | None = None
    for name, limits in scopes.items():
        used = usage.get(name)
        if used is None:
            continue
        if limits.rpm is not None and (
            requests is None or limits.rpm - used.requests < requests[0]
        ):
            requests = (limits.rpm - used.requests, limits.rpm, used)
        if limits.tpm is not None and (tokens is None or limits.tpm - used.tokens < tokens[0]):
            tokens = (limits.tpm - used.tokens, limits.tpm, used)
    headers: Headers = []
    for found, names in ((requests, _REQUEST_HEADERS), (tokens, _TOKEN_HEADERS)):
        if found is not None:
            left, limit, used = found
            reset = used.oldest_at + 60.0 - reservation.at
            headers += [
                (names[0], str(limit).encode()),
                (names[1], str(max(0, left)).encode()),
                (names[2], _reset(reset)),
            ]
    return headers


_REQUEST_HEADERS = (
    b"x-ratelimit-limit-requests",
    b"x-ratelimit-remaining-requests",
    b"x-ratelimit-reset-requests",
)
_TOKEN_HEADERS = (
    b"x-ratelimit-limit-tokens",
    b"x-ratelimit-remaining-tokens",
    b"x-ratelimit-reset-tokens",
)


def denied_headers(scopes: Mapping[str, Limits], exc: LimitExceeded) -> Headers:
    limits = scopes.get(exc.scope)
    if limits is None:
        return []
    headers: Headers = []
    for field, kind in (("rpm", b"requests"), ("tpm", b"tokens")):
        limit = getattr(limits, field)
        if limit is None:
            continue
        headers.append((b"x-ratelimit-limit-" + kind, str(limit).encode()))
        if exc.limit == field:
            headers.append((b"x-ratelimit-remaining-" + kind, b"0"))
            headers.append((b"x-ratelimit-reset-" + kind, _reset(exc.retry_after_s)))
    return headers


def _without_concurrency(scopes: dict[str, Limits] | None) -> dict[str, Limits] | None:
    """`scopes` with no concurrency limit (None: nothing left to count)."""
    if scopes is None:
        return None
    kept = {name: dataclasses.replace(limits, concurrency=None) for name, limits in scopes.items()}
    return None if all(limits.unlimited for limits in kept.values()) else kept
