"""The stream meter (cut at the reservation, tokenizer only once bytes could exceed it), and
the completion allowance that is reserved."""

from __future__ import annotations

import pytest

from bulkhead.domain import (
    Principal,
    PrincipalKind,
    Role,
    Tenant,
    TenantContext,
    TenantStatus,
    Tier,
)
from bulkhead.errors import InvalidRequest, RateLimited
from bulkhead.limits import ByteCounter, InMemoryLimiter, LimitAdmission, StreamMeter, call_limits
from bulkhead.limits.admission import completion_allowance
from bulkhead.limits.meter import LONGEST_TOKEN_BYTES


class CountingCounter(ByteCounter):
    def __init__(self) -> None:
        self.calls = 0
        self.longest = 0

    def count(self, text: str) -> int:
        self.calls += 1
        self.longest = max(self.longest, len(text))
        return super().count(text)


def test_short_streams_never_run_the_tokenizer() -> None:
    counter = CountingCounter()
    meter = StreamMeter(counter, allowance=100)
    assert all(meter.add("word ") for _ in range(20))
    assert counter.calls == 0
    assert meter.tokens == 100  # counted once, when asked (the charge of a cut-off call)
    assert counter.calls == 1


def test_cut_after_the_reserved_number_of_events() -> None:
    meter = StreamMeter(ByteCounter(), allowance=3)
    assert [meter.add("a") for _ in range(4)] == [True, True, True, False]


def test_cut_when_events_carry_many_tokens_each() -> None:
    meter = StreamMeter(ByteCounter(), allowance=4)  # ceiling 2 * 4 + 16 = 24 tokens
    assert meter.add("x" * 20)
    assert not meter.add("y" * 10)
    assert meter.tokens == 30


def test_more_bytes_than_the_longest_tokens_could_make_are_cut_without_the_tokenizer() -> None:
    counter = CountingCounter()
    meter = StreamMeter(counter, allowance=4)  # ceiling 24 tokens: at most 24 * 128 bytes
    assert meter.add("word ")
    assert not meter.add("x" * (24 * LONGEST_TOKEN_BYTES))
    assert meter.tokens == 25  # charged just past the ceiling
    assert counter.longest == 5  # only the short text was counted
    # Just within what the longest tokens could make, the text is counted.
    meter = StreamMeter(counter, allowance=4)
    assert not meter.add("x" * (24 * LONGEST_TOKEN_BYTES))
    assert counter.longest == 24 * LONGEST_TOKEN_BYTES


def caller(quotas: dict[str, object]) -> TenantContext:
    tenant = Tenant("t-1", "acme", Tier.SHARED, TenantStatus.ACTIVE, quotas=quotas)
    p = Principal("p-1", tenant.id, "svc", PrincipalKind.SERVICE, frozenset({Role.END_USER}))
    return TenantContext(tenant=tenant, principal=p, role=Role.END_USER, credential_id="k-1")


def test_an_unlimited_tenants_stream_is_still_metered() -> None:
    admission = LimitAdmission(
        InMemoryLimiter(), ByteCounter(), key_quotas=lambda key: None, on_fail_open=print
    )
    unlimited = dict.fromkeys(("requests_per_minute", "tokens_per_minute", "concurrency"))
    ticket = admission.admit(caller(unlimited), "chat", {"max_tokens": 3}, generates=True)
    meter = ticket.meter()
    assert meter is not None and meter.allowance == 3
    assert [meter.add("a") for _ in range(4)] == [True, True, True, False]
    assert admission.admit(caller(unlimited), "embeddings", {"input": "x"}).meter() is None


def test_a_nested_call_takes_no_second_slot_but_counts_its_request() -> None:
    admission = LimitAdmission(
        InMemoryLimiter(), ByteCounter(), key_quotas=lambda key: None, on_fail_open=print
    )
    one = caller({"concurrency": 1, "requests_per_minute": 3, "tokens_per_minute": None})
    outer = admission.admit(one, None, {})  # the search, holding the tenant's one slot
    with pytest.raises(RateLimited):
        admission.admit(one, "embeddings", {"input": "x"})  # any other call waits its turn
    inner = admission.admit(one, "embeddings", {"input": "x"}, nested=True)
    admission.precheck(one, "embeddings", {"input": "x"}, nested=True)
    inner.settle(1, 0)
    outer.settle(0, 0)
    admission.admit(one, None, {}).settle(0, 0)  # the third request of the minute
    with pytest.raises(RateLimited):  # nested or not, every request counted
        admission.admit(one, "embeddings", {"input": "x"}, nested=True)


# The completion's length under every name, times the sequences generated -------------------

SHARED = call_limits(Tier.SHARED, {}, None)  # cap 4096, default 1024


@pytest.mark.parametrize(
    "body, allowance",
    [
        ({}, 1024),
        ({"max_tokens": 10}, 10),
        ({"max_completion_tokens": 10}, 10),
        ({"max_tokens": 10, "max_completion_tokens": 10}, 10),
        ({"max_tokens": 10, "max_completion_tokens": None}, 10),
        ({"max_tokens": 10, "n": 3}, 30),
        ({"max_tokens": 10, "n": 2, "best_of": 5}, 50),  # vLLM generates best_of sequences
        ({"max_tokens": 10, "prompt": ["a", "b", "c"]}, 30),  # completions for each prompt
        ({"max_tokens": 10, "n": 2, "prompt": [[1, 2], [3]]}, 40),
        ({"max_tokens": 10, "prompt": [1, 2, 3]}, 10),  # one prompt, as tokens
        ({"max_tokens": 10, "prompt": "abc"}, 10),
    ],
)
def test_allowance(body: dict[str, object], allowance: int) -> None:
    assert completion_allowance(SHARED, body) == allowance


def test_the_default_is_the_tiers_capped_by_the_key() -> None:
    admission = LimitAdmission(
        InMemoryLimiter(), ByteCounter(), key_quotas=lambda key: None, on_fail_open=print
    )
    assert admission.default_max_tokens(caller({})) == 1024
    capped = LimitAdmission(
        InMemoryLimiter(),
        ByteCounter(),
        key_quotas=lambda key: {"max_tokens_per_request": 100},
        on_fail_open=print,
    )
    assert capped.default_max_tokens(caller({})) == 100
    body: dict[str, object] = {}
    assert completion_allowance(SHARED, body) == 1024 and body == {}  # validation writes it


@pytest.mark.parametrize(
    "body, param",
    [
        ({"max_tokens": 5000}, "max_tokens"),
        ({"max_completion_tokens": 5000}, "max_completion_tokens"),
    ],
)
def test_a_length_over_the_cap_is_refused(body: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        completion_allowance(SHARED, body)
    assert refused.value.param == param
