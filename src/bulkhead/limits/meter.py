"""A stream's completion, metered against the tokens its call reserved."""

from __future__ import annotations

from bulkhead.limits.tokens import TokenCounter, count_weight

LONGEST_TOKEN_BYTES = 128
"""The longest token of o200k_base, in bytes (a run of 128 spaces)."""


class StreamMeter:
    """Meters a stream's completion against its reserved `max_tokens`.

    The upstream is asked for at most `allowance` tokens, so this is a safety
    net for one that does not stop.  Each event with text is at least one
    generated token, so the stream is spent once more such events arrive than
    were reserved — however the upstream's own tokenizer splits text.  The
    text is counted too (o200k, which may differ from the upstream's
    tokenizer, hence the slack), against a server that packs many tokens into
    one event.  `tokens` is what the call is charged when it is cut off.
    """

    def __init__(self, counter: TokenCounter, allowance: int):
        self._counter = counter
        self.weight = count_weight(counter)  # for the relay's choice of a worker thread
        self.allowance = allowance
        self._ceiling = 2 * allowance + 16
        self.pieces = 0
        self._text: list[str] = []  # held only while the byte count is below the ceiling
        self._bytes = 0
        self._tokens = 0
        self._later: list[str] = []  # pieces past the ceiling not counted yet, each counted alone
        self._uncounted = 0  # the bytes of `_text` and `_later`: at least their tokens

    @property
    def tokens(self) -> int:
        """The stream's tokens so far (o200k), what a cut-off call is charged."""
        if self._text:
            self._tokens += self._counter.count("".join(self._text))
            self._text.clear()
        if self._later:
            self._tokens += sum(self._counter.count(text) for text in self._later)
            self._later.clear()
        self._uncounted = 0
        return self._tokens

    def add(self, text: str) -> bool:
        """Count one event's `text`; True while the stream is within its reservation.

        A token is at least one byte, so the tokenizer runs only once the bytes
        pass the ceiling, and then only once the tokens counted plus the bytes
        not counted yet could pass it: most streams never pay for it, and a
        long one pays once for many events (the counts, and where a stream is
        cut, are the same as counting every event at once).  And no o200k token
        is longer than `LONGEST_TOKEN_BYTES`, so bytes past that many times
        the ceiling are more tokens than it whatever they say: an upstream
        sending megabytes in one event is cut without tokenising them, and
        charged the ceiling.
        """
        if not text:  # the held text is counted here (as one), as it always was
            return self.pieces <= self.allowance and self.tokens <= self._ceiling
        self.pieces += 1
        size = len(text.encode("utf-8", "surrogatepass"))
        if self._bytes + size > LONGEST_TOKEN_BYTES * self._ceiling:
            self._tokens = max(self.tokens, self._ceiling + 1)
            return False
        self._uncounted += size
        if self._bytes <= self._ceiling:
            self._bytes += size
            self._text.append(text)
            if self._bytes <= self._ceiling:
                return self.pieces <= self.allowance
        else:
            self._bytes += size
            self._later.append(text)
        if self.pieces > self.allowance:
            return False
        return self._tokens + self._uncounted <= self._ceiling or self.tokens <= self._ceiling
