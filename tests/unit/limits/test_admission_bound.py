"""Admission before the encoder is built (the gateway's first call): an upper bound of the
prompt is reserved, never less than its count, and the tenant is charged the count."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.domain import (
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.errors import RateLimited, Unavailable
from bulkhead.limits import ByteCounter, InMemoryLimiter, LimitAdmission, O200kCounter, tokens
from bulkhead.limits.tokens import prompt_tokens

COUNTER = O200kCounter()


class Building:
    """A counter whose encoder is not built yet: counts words (fewer than bytes) once built."""

    def __init__(self) -> None:
        self.ready = False
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        self.ready = True  # counting builds it
        return len(text.split())


def caller(tpm: int | None) -> TenantContext:
    quotas = {"requests_per_minute": 100, "tokens_per_minute": tpm, "concurrency": 10}
    tenant = Tenant("t-1", "acme", Tier.SHARED, TenantStatus.ACTIVE, quotas=quotas)
    p = Principal("p-1", tenant.id, "svc", PrincipalKind.SERVICE, frozenset({Role.END_USER}))
    return TenantContext(tenant=tenant, principal=p, role=Role.END_USER, credential_id="k-1")


def admission(counter: Any, limiter: InMemoryLimiter | None = None) -> LimitAdmission:
    return LimitAdmission(
        limiter or InMemoryLimiter(), counter, key_quotas=lambda key: None, on_fail_open=print
    )


def remaining(headers: list[tuple[bytes, bytes]]) -> int:
    return int(dict(headers)[b"x-ratelimit-remaining-tokens"])


BODY = {"messages": [{"role": "user", "content": "one two three four"}], "max_tokens": 10}
BOUND = 3 + 3 + 1 + len("one two three four")  # priming, the message, its role, its bytes


def test_before_the_encoder_the_bound_is_reserved_and_the_count_charged() -> None:
    counter = Building()
    gate = admission(counter)
    ticket = gate.admit(caller(1000), "chat", BODY, generates=True)
    assert counter.calls == 0  # nothing counted before the answer
    assert remaining(ticket.headers) == 1000 - BOUND - 10
    assert ticket.measured("") == (3 + 3 + 1 + 4, 0)  # the count, when it is asked for
    ticket.settle(None, 2)  # an upstream that reports no prompt usage: charged the count
    after = gate.admit(caller(1000), None, {})
    assert remaining(after.headers) == 1000 - (11 + 2)
    assert counter.calls == 1


def test_an_upstreams_usage_needs_no_count() -> None:
    counter = Building()
    gate = admission(counter)
    gate.admit(caller(1000), "chat", BODY, generates=True).settle(7, 2)
    assert remaining(gate.admit(caller(1000), None, {}).headers) == 1000 - 9
    assert counter.calls == 0


def test_a_bound_over_the_limit_is_counted_before_any_refusal() -> None:
    counter = Building()
    gate = admission(counter)
    fits = 3 + 3 + 1 + 4 + 10  # the count fits, the bound (31) would not
    ticket = gate.admit(caller(fits), "chat", BODY, generates=True)
    assert counter.calls == 1
    assert remaining(ticket.headers) == 0
    with pytest.raises(RateLimited):  # the next one does not fit, counted or not
        gate.admit(caller(fits), "chat", BODY, generates=True)


def test_a_ready_encoder_counts_at_once() -> None:
    counter = Building()
    counter.ready = True
    ticket = admission(counter).admit(caller(1000), "chat", BODY, generates=True)
    assert counter.calls == 1
    assert remaining(ticket.headers) == 1000 - 11 - 10


BODIES: list[tuple[str, dict[str, Any]]] = [
    ("chat", BODY),
    (
        "chat",
        {
            "messages": [
                {"role": "system", "content": "Réponds en français. 你好"},
                {"role": "critic", "name": "x", "content": [{"type": "text", "text": "🙂 hi"}]},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f"}}]},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        },
    ),
    ("completions", {"prompt": ["abc def", [1, 2, 3], "\ud800 lone"]}),
    ("completions", {"prompt": [5, 6, 7, 8]}),
    ("embeddings", {"input": ["      ", "x" * 70_000 + " y" * 10]}),
]


@pytest.mark.parametrize("endpoint, body", BODIES)
def test_the_bound_is_never_below_the_count(endpoint: str, body: dict[str, Any]) -> None:
    assert prompt_tokens(ByteCounter(), endpoint, body) >= prompt_tokens(COUNTER, endpoint, body)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_a_texts_bytes_are_never_fewer_than_its_tokens(text: str) -> None:
    body = {"messages": [{"role": "user", "content": text, "name": text}]}
    assert prompt_tokens(ByteCounter(), "chat", body) >= prompt_tokens(COUNTER, "chat", body)


@pytest.fixture
def failed_build(monkeypatch: pytest.MonkeyPatch) -> O200kCounter:
    """A counter whose encoder fails to build after start-up (its vocabulary was checked):
    out of memory, say."""

    def out_of_memory() -> object:
        raise MemoryError

    monkeypatch.setattr(tokens, "_core_bpe", out_of_memory)
    return O200kCounter()


def test_a_failed_build_refuses_with_a_503_not_a_500(failed_build: O200kCounter) -> None:
    gate = admission(failed_build)
    fits = 3 + 3 + 1 + 4 + 10  # the bound does not fit: it must be counted, and cannot be
    with pytest.raises(Unavailable, match="count"):
        gate.admit(caller(fits), "chat", BODY, generates=True)
    with pytest.raises(Unavailable, match="count"):
        gate.count("chat", BODY)  # a large body's count (on a worker thread)


def test_a_failed_build_charges_the_bound_after_the_answer(failed_build: O200kCounter) -> None:
    """The answer is out: the call is charged its bound (never less than the count) rather
    than the settlement failing and its reservation left to lapse."""
    gate = admission(failed_build)
    ticket = gate.admit(caller(1000), "chat", BODY, generates=True)
    assert ticket.measured("")[0] == BOUND  # the canary's share, an opaque upstream's floor
    ticket.settle(None, 2)
    assert remaining(gate.admit(caller(1000), None, {}).headers) == 1000 - BOUND - 2
