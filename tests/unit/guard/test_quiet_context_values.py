"""Long values whose gate lies far back, split anywhere after quiet prose (review 11).

The stream filter looks again only at the last `QUIET_REACH - 1` characters of a context
already known quiet.  Values longer than that (spaced card numbers, IBANs, e-mail
addresses, JWTs, PEM blocks, PRC IDs, phone numbers, URLs with credentials, `Basic` and
`Bearer` credentials, key prefixes, the canary, a placeholder, full-width digits, combining
marks) are cut at every position, and fed a character at a time, after quiet prose: the
filter must give exactly what the reference (the whole context scanned every time) gives.
And at every scan the gate tried on the context's end must say what it says of the whole
scan (`CheckedFilter`): the output alone would hide a reach cut too short.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.errors import ContentBlocked
from bulkhead.guard import Guard, GuardConfig
from bulkhead.guard._entities import Action
from bulkhead.guard._pseudonym import PseudonymVault
from bulkhead.guard._scan import quiet
from bulkhead.guard._stream import MIN_WINDOW, StreamFilter, _Edit
from tests.unit.guard.test_quiet_context import CANARY, GUARDS, PIECES, _filters, _outcome

VALUES = [
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000",
    "a.very.long.local.part.name@sub.example.co.uk",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\n-----END RSA PRIVATE KEY-----",
    "11010519491231002X",
    "(020) 7946 0958",
    "+1 (415) 555-2671",
    "https://user:hunter2hunter2@example.com/path",
    "Authorization: Basic dXNlcjpwYXNzd29yZDEyMw==",
    "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGh",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "my passport number is X12345678",
    CANARY.value,
    "<EMAIL_1>",
    "[x](https://evil.example.net/a)",
    " ".join(["\uff14\uff11\uff11\uff11", *["\uff11" * 4] * 3]),  # a full-width card number
    "ze\u0301ro.one@example.com \U0001f600",
    # Letters alone: only the gate's word, cut in two, makes the scan loud.
    "Bearer AbCdEfGhIjKlMnOpQrStUvWxYz",
    "Basic dXNlcjpwYXNzd29yZA",
    "github_pat_AbCdEfGhIjKlMnOpQrStUvWx_AbCdEfGhIjKlMnOpQrStUvWxAbCdEfGhIjKlMnOpQrStUvWx",
    "-----BEGIN PRIVATE KEY-----",
    "the passphrase is hunterhunterhunter",
    "access key AbCdEfGhIjKlMnOpQr",
]
PROSE = "lorem ipsum dolor sit amet " * 4
SMALL_WINDOW = (
    Guard(GuardConfig(pii=Action.REDACT, strip_links=True, canary=True, stream_window=MIN_WINDOW)),
    Guard(GuardConfig(pii=Action.BLOCK, secrets=Action.BLOCK, stream_window=MIN_WINDOW)),
)


def _same(parts: list[str]) -> None:
    for guard in (*GUARDS, *SMALL_WINDOW):
        for canary in (None, CANARY):
            fast, slow = _filters(guard, canary)

            def run(f: StreamFilter) -> str:
                return "".join(f.feed(p) for p in parts) + f.flush()

            assert _outcome(lambda: run(fast)) == _outcome(lambda: run(slow)), parts
            assert fast.findings == slow.findings


@pytest.mark.parametrize("value", VALUES)
def test_a_long_value_cut_anywhere_after_quiet_prose_is_found_as_before(value: str) -> None:
    text = f"{PROSE}x {value} and then {value}. ok"
    for cut in range(len(PROSE), len(PROSE) + len(value) + 3):
        _same([text[:cut], text[cut:]])
    _same(list(text))  # a character at a time, as a model streams


class CheckedFilter(StreamFilter):
    """Checks at every scan that the gate tried on the context's end said what the gate
    tried on the whole scan says: the output alone rarely shows a wrong reach, since the
    hold-back keeps a run of letters (most gates' words) out of the context."""

    def _edits(self, pending: str) -> list[_Edit]:
        scan = self._context + pending
        edits = super()._edits(pending)
        assert self._quiet_scan == quiet(scan), (self._context, pending)
        return edits


# Where the context can end inside a gate: after a word the hold-back released (a gate of
# words: "access |key").  Within a run of letters it cannot: the run is held back, and one
# longer than the window is released a window behind its newest character, so a gate is
# whole in the scan its last character arrives in (which then marks the context loud).
SPLIT_GATES = [
    " access key AbCdEf",
    " the api key hunter",
    " PRIVATE KEY",
    " " + "x" * 80 + "github_pat_" + "y" * 80,
]


def _checked(parts: list[str]) -> None:
    for guard in (GUARDS[0], *SMALL_WINDOW):
        f = guard.output_filter(PseudonymVault(), None)
        f.__class__ = CheckedFilter
        with contextlib.suppress(ContentBlocked):
            "".join(f.feed(p) for p in parts) + f.flush()


@pytest.mark.parametrize("gate", SPLIT_GATES)
def test_a_gate_split_by_the_hold_back_is_seen_from_the_end_of_the_context(gate: str) -> None:
    _checked(list(PROSE + gate))


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=16), st.lists(st.integers(1, 12), max_size=40))
def test_the_gate_on_the_end_of_a_quiet_context_is_the_gate_on_the_whole_scan(
    pieces: list[str], cuts: list[int]
) -> None:
    text = "".join(pieces)
    parts, at = [], 0
    for n in cuts:
        parts.append(text[at : at + n])
        at += n
    parts.append(text[at:])
    _checked(parts)
