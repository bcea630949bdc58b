"""A stream's filter looks again only at the end of a context already known quiet.

`StreamFilter` scans each piece with the `_CONTEXT` characters sent before it.  Where that
context is known `quiet`, it tries the gate on the piece with the context's last
`QUIET_REACH - 1` characters instead of on the whole scan.  Checked: the lemma itself on
texts built near every gate, that the key-start gate has no anchor or look-around (the
lemma needs every gate to be a fixed run of characters), and that random streams, cut
anywhere, come out of the filter exactly as out of the filter scanning the whole context
every time (the code it replaced, kept here as the reference): same text or same refusal,
same findings, same state.
"""

from __future__ import annotations

import re._constants as sre_constants
import re._parser as sre_parse
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.errors import ContentBlocked
from bulkhead.guard import Guard, GuardConfig
from bulkhead.guard._canary import Canary
from bulkhead.guard._entities import Action, Entity
from bulkhead.guard._pseudonym import PLACEHOLDER, PseudonymVault
from bulkhead.guard._scan import _LOUD_AS_IS, _LOUD_LOWER, QUIET_REACH, quiet
from bulkhead.guard._secrets import ANY_KEY_START
from bulkhead.guard._stream import (
    _LINK_END,
    _TAG_END,
    StreamFilter,
    _Edit,
    _non_overlapping,
    _shift,
)
from tests.unit.guard.test_chain_shortcuts import WHOLE_PIECES
from tests.unit.guard.test_scan_quiet import _NEAR, LETTERS_ONLY

CANARY = Canary("bkc" + "0123456789abcdef01234567")
GUARDS = (
    Guard(GuardConfig()),
    Guard(GuardConfig(pii=Action.REDACT, strip_links=True, canary=True)),
    Guard(GuardConfig(pii=Action.BLOCK, allowed_link_hosts=("docs.example.com",))),
    Guard(GuardConfig(pii=Action.PSEUDONYMIZE, secrets=Action.MASK)),
)
_PROSE = ["lorem ", "ipsum ", "dolor sit ", "amet", ", ", ". ", "\n", "a", "se", "cret", "to"]
# Findings of letters alone, whose gate a cut can leave half in the context: `api key`,
# `PRIVATE KEY`, runs longer than the window.
_LOUD_WORDS = [
    *LETTERS_ONLY,
    "api key hunterhunter",
    "access key AbCdEfGhIjKlMnOp",
    "github_pat_AbCdEfGhIjKlMnOpQrStUvWx_AbCdEfGhIjKlMnOpQrStUvWxAbCdEfGhIjKlMnOpQrStUvWx",
    "-----BEGIN PRIVATE KEY-----",
    "x" * 60,
    "AbCdEfGhIjKlMnOpQrStUvWxYz" * 3,
]
PIECES = st.one_of(
    st.sampled_from(_NEAR), WHOLE_PIECES, st.sampled_from(_PROSE), st.sampled_from(_LOUD_WORDS)
)


def reference_edits(self: StreamFilter, pending: str) -> list[_Edit]:
    """`StreamFilter._edits` as it was: the whole scan through `EntityScanner.find`."""
    scan = self._context + pending
    base = len(self._context)
    edits = [self._entity_edit(f, scan) for f in self._scanner.find(scan)]
    if self._vault is not None and "<" in pending:
        for m in PLACEHOLDER.finditer(scan, base):
            value = self._vault.lookup(m.group())
            if value is not None:
                edits.append(_Edit(m.start(), m.end(), None, value, True, None))
    if self._links is not None:
        for s in self._links.find(scan):
            until = _TAG_END if s.tag else _LINK_END
            edits.append(_Edit(s.start, s.end, None, s.replacement, s.complete, until))
    if not edits:
        return edits
    return _shift(_non_overlapping([e for e in edits if e.start >= base]), -base)


class ReferenceFilter(StreamFilter):
    _edits = reference_edits


def _outcome(run: Callable[[], str]) -> tuple[str, object]:
    try:
        return "ok", run()
    except ContentBlocked as exc:
        return "blocked", exc.reasons


@settings(max_examples=1000, deadline=None)
@given(st.lists(PIECES, max_size=12), st.integers(0, 400))
def test_a_quiet_head_is_looked_at_only_by_its_end(pieces: list[str], cut: int) -> None:
    text = "".join(pieces)
    head, tail = text[:cut], text[cut:]  # cut anywhere, inside a gate's word too
    if quiet(head):
        assert quiet(head + tail) == quiet(head[1 - QUIET_REACH :] + tail)


# Each gate `quiet` tests, written out (the key starts as a key would begin).
_KEY_STARTS = [
    "sk-", "_live_", "_test_", "bks_", "bk_", "ghp_", "github_pat_", "xoxb-", "xapp-", "AIza",
    "AKIA", "ASIA", "GOCSPX-", "hf_", "glpat-", "npm_", "SG.", "whsec_", "SK", "Q~",
]  # fmt: skip
GATES = [*_LOUD_LOWER, *(w.upper() for w in _LOUD_LOWER), *_LOUD_AS_IS, *_KEY_STARTS]


def test_a_gate_cut_anywhere_is_still_seen_from_the_end_of_the_head() -> None:
    for gate in GATES:
        assert not quiet(gate), gate
        for k in range(1, len(gate)):
            head, tail = "lorem ipsum dolor " * 4 + gate[:k], gate[k:] + " sit amet"
            if quiet(head):
                assert not quiet(head[1 - QUIET_REACH :] + tail), (gate, k)


def test_every_gate_is_a_fixed_run_of_characters() -> None:
    """No anchor, boundary or look-around in the key starts: a match in a stretch of a text
    is a match in the text, and one in the text lies within `QUIET_REACH` characters."""
    banned = {sre_constants.AT, sre_constants.ASSERT, sre_constants.ASSERT_NOT}

    def ops(parsed: sre_parse.SubPattern) -> set[object]:
        found: set[object] = set()
        for op, arg in parsed:
            found.add(op)
            for item in arg if isinstance(arg, (list, tuple)) else ():
                if isinstance(item, sre_parse.SubPattern):
                    found |= ops(item)
                elif isinstance(item, (list, tuple)):
                    found |= {
                        o for sub in item if isinstance(sub, sre_parse.SubPattern) for o in ops(sub)
                    }
        return found

    assert not ops(sre_parse.parse(ANY_KEY_START.pattern)) & banned
    assert max(map(len, GATES)) == QUIET_REACH
    assert sre_parse.parse(ANY_KEY_START.pattern).getwidth()[1] <= QUIET_REACH


def _filters(guard: Guard, canary: Canary | None) -> tuple[StreamFilter, StreamFilter]:
    vault = PseudonymVault()
    vault.placeholder_for(Entity.EMAIL, "zhang.san@example.com")
    fast = guard.output_filter(vault, canary)
    slow = guard.output_filter(vault, canary)
    slow.__class__ = ReferenceFilter
    return fast, slow


@settings(max_examples=500, deadline=None)
@given(st.lists(PIECES, max_size=24), st.lists(st.integers(1, 40), max_size=24))
def test_a_stream_comes_out_as_with_the_whole_context_scanned(
    pieces: list[str], cuts: list[int]
) -> None:
    text = "".join(pieces)
    parts, at = [], 0
    for n in cuts:  # the same text, cut elsewhere than where its pieces join
        parts.append(text[at : at + n])
        at += n
    parts.append(text[at:])
    for guard in GUARDS:
        for canary in (None, CANARY):
            fast, slow = _filters(guard, canary)

            def run(f: StreamFilter) -> str:
                return "".join(f.feed(p) for p in parts) + f.flush()

            assert _outcome(lambda: run(fast)) == _outcome(lambda: run(slow))
            assert fast.findings == slow.findings
            assert (fast._context, fast._offset, fast.held) == (
                slow._context,
                slow._offset,
                slow.held,
            )
