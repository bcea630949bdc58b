"""`StreamMeter` counts lazily: the same answers and charges as counting every event at once.

`Eager` is the meter as it was before it deferred the tokenizer (each event past the
ceiling counted as it arrived); both meter the same random streams and must agree on
every `add` and on `tokens` wherever it is asked, with fewer tokenizer calls (an event
past the ceiling is counted only when its count could matter).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.limits import StreamMeter
from bulkhead.limits.meter import LONGEST_TOKEN_BYTES
from bulkhead.limits.tokens import O200kCounter, TokenCounter

O200K = O200kCounter()


class Eager:
    """The reference: every event past the ceiling is counted when it arrives."""

    def __init__(self, counter: TokenCounter, allowance: int) -> None:
        self.counter, self.allowance = counter, allowance
        self.ceiling = 2 * allowance + 16
        self.pieces = self.bytes = self.counted = 0
        self.text: list[str] = []

    @property
    def tokens(self) -> int:
        if self.text:
            self.counted += self.counter.count("".join(self.text))
            self.text.clear()
        return self.counted

    def add(self, text: str) -> bool:
        if text:
            self.pieces += 1
            size = len(text.encode("utf-8", "surrogatepass"))
            if self.bytes + size > LONGEST_TOKEN_BYTES * self.ceiling:
                self.counted = max(self.tokens, self.ceiling + 1)
                return False
            if self.bytes <= self.ceiling:
                self.bytes += size
                self.text.append(text)
                if self.bytes <= self.ceiling:
                    return self.pieces <= self.allowance
            else:
                self.bytes += size
                self.counted += self.counter.count(text)
        return self.pieces <= self.allowance and self.tokens <= self.ceiling


class Calls:
    def __init__(self) -> None:
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return O200K.count(text)


_PIECE = st.sampled_from(
    ["", " ", "word ", "lorem", " ipsum", "\u4e2d\u6587", "\U0001f600", "\ud800", "  " * 40,
     "x" * 300, "4111 1111 1111 1111", "\n\n", "a"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40), st.lists(st.tuples(_PIECE, st.booleans()), max_size=60))
def test_the_same_answers_and_charges_as_counting_every_event(
    allowance: int, stream: list[tuple[str, bool]]
) -> None:
    lazy, eager = StreamMeter(O200K, allowance), Eager(O200K, allowance)
    for text, ask in stream:
        assert lazy.add(text) == eager.add(text)
        if ask:
            assert lazy.tokens == eager.tokens
    assert lazy.tokens == eager.tokens


def test_a_stream_past_the_ceiling_runs_the_tokenizer_once_not_once_an_event() -> None:
    lazy, eager = Calls(), Calls()
    a, b = StreamMeter(lazy, 32), Eager(eager, 32)  # ceiling 80 tokens
    for i in range(20):  # the bench's stream: 20 events, about 130 bytes
        assert a.add(f"word{i % 7} ") == b.add(f"word{i % 7} ")
    assert (lazy.calls, eager.calls) == (1, 7)
    # Counted when asked (a cut-off call's charge, a tenant's own upstream), the same.
    assert a.tokens == b.tokens
