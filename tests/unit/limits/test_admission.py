"""The stream meter: cut at the reservation, tokenizer only once bytes could exceed it."""

from __future__ import annotations

from bulkhead.limits import ByteCounter, StreamMeter


class CountingCounter(ByteCounter):
    def __init__(self) -> None:
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
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
