"""The per-response output filter: redaction, pseudonym restoration and link stripping on a
stream, with a bounded hold-back.

`feed` takes each piece of text as it arrives and returns what may be sent
now; `flush` returns the rest at the end.  The filter holds back only the
tail that could still turn out to be part of something it must change: the
trailing run of characters that entities, placeholders and link targets are
made of ("…card 4111 1111", "<EMAIL_", "](https://ev"), and never more than
`window` characters of it.  Everything before that tail can no longer be
part of a match, so it goes out at once; prose ending in a space or a
Chinese character is not held at all.

A credential or link target longer than the window cannot be held whole.
Once its start is recognised it is replaced (a mask becomes a redaction:
its tail is not known yet) and the rest of it is dropped as it arrives,
up to the first character that cannot belong to it (for a PEM block, up to
its END line).  So a secret is never emitted in part, and the hold-back
stays bounded.

A window of `window` characters covers every bounded entity (the longest,
an IPv6 address with a zone, is 55; a grouped 25-digit account number or a
UK sort code with its account after a label are shorter), and the labels
that account and passport numbers need sit in the `_CONTEXT` characters
already sent, so where a stream is cut makes no
difference to what comes out.  The exception is an entity inside an
unbroken run of entity characters longer than the window - an e-mail
address of more than 64 characters, or one glued to a long token before
it: when the window fills, the run's start goes out before the `@` that
would make it an address arrives.  A tenant that expects such addresses
raises `GuardConfig.stream_window`.

A long piece (a whole answer, or an upstream's oversized event) is taken
`PIECE` characters at a time, each cut just after a space or line end where
one is near, as if it had arrived so: every step then works on a bounded
text.  Its regular expressions, folding and sorting run in C with the
interpreter lock held, so over megabytes at once they would keep the event
loop waiting even while the filter runs on a worker thread.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

from bulkhead.errors import ContentBlocked
from bulkhead.guard._actions import ActionOf, reason, redaction, replacement
from bulkhead.guard._canary import Canary, CanaryWatch
from bulkhead.guard._entities import Action, Entity, Finding
from bulkhead.guard._links import LinkPolicy
from bulkhead.guard._pseudonym import PLACEHOLDER, PseudonymVault
from bulkhead.guard._scan import QUIET_REACH, EntityScanner, quiet
from bulkhead.guard._secrets import PEM_END

DEFAULT_WINDOW = 64
MIN_WINDOW = 64
MAX_WINDOW = 4096
PIECE = 64 * 1024
_BREAK = re.compile(r"\s")
_CONTEXT = 64
"""Characters already sent that a scan still sees: labels, `Bearer`, look-behinds."""

_RUN = frozenset(string.ascii_letters + string.digits + "@._%+-:/=~()<>[]!#&?*|\\")
_GROUP = frozenset(string.ascii_uppercase + string.digits + ")")
_TAG_START = frozenset(string.ascii_letters + "/")

_TOKEN_END = re.compile(r"(?=[^A-Za-z0-9_\-.~+/=])")
_EMAIL_END = re.compile(r"(?=[^A-Za-z0-9.\-])")
_UNTIL: dict[Entity, re.Pattern[str]] = {
    Entity.API_KEY: _TOKEN_END,
    Entity.BEARER_TOKEN: _TOKEN_END,
    Entity.JWT: _TOKEN_END,
    Entity.EMAIL: _EMAIL_END,
    Entity.PRIVATE_KEY: PEM_END,
    # An Azure AccountKey is 88 characters; a SAS `sig=` value is percent-encoded.
    Entity.CLOUD_SECRET: re.compile(r"(?=[^A-Za-z0-9_\-.~+/=%])"),
    Entity.CREDENTIAL: re.compile(r"(?=[\s\"',;@<])"),  # `<`: an XML element's end tag
}
"""Entities without an upper length: where the rest of one ends, once its start went out."""
_LINK_END = re.compile(r"\)|(?=\s)")
_TAG_END = re.compile(r">")


@dataclass(frozen=True, slots=True)
class _Edit:
    """A change to `pending[start:end]`: a finding to act on, or a ready replacement."""

    start: int
    end: int
    finding: Finding | None
    text: str
    complete: bool
    until: re.Pattern[str] | None


class StreamFilter:
    """Filters one response (one choice of it): `feed` each piece, `flush` at the end.

    Raises `ContentBlocked` if the canary appears or an entity set to `block`
    does; what it returned before that has gone out, nothing after it will.
    """

    def __init__(
        self,
        *,
        scanner: EntityScanner,
        action_of: ActionOf,
        vault: PseudonymVault | None = None,
        canary: Canary | None = None,
        links: LinkPolicy | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if not MIN_WINDOW <= window <= MAX_WINDOW:
            raise ValueError(f"the hold-back window is {MIN_WINDOW} to {MAX_WINDOW} characters")
        self._scanner = scanner
        self._action_of = action_of
        self._vault = vault if vault else None
        self._watch = CanaryWatch(canary) if canary is not None else None
        self._links = links if links is not None and links.active else None
        self._window = window
        self._pending = ""
        self._context = ""
        self._quiet_context = True  # `quiet(self._context)` is known to hold (else: not known)
        self._quiet_scan = True  # whether the last scan (`_edits`) was quiet
        self._offset = 0
        self._drop_until: re.Pattern[str] | None = None
        self._drop_tail = ""
        self._findings: list[Finding] = []

    @property
    def held(self) -> int:
        """How many received characters are waiting (never more than the window)."""
        return len(self._pending)

    @property
    def findings(self) -> tuple[Finding, ...]:
        """What was found so far, at offsets in the unfiltered response."""
        return tuple(self._findings)

    def feed(self, text: str) -> str:
        """Take the next piece of the response; return what may be sent now."""
        if len(text) <= PIECE:
            return self._feed(text)
        return "".join(self._feed(piece) for piece in _pieces(text))

    def whole(self, text: str) -> str:
        """`feed(text) + flush()`: a whole answer's text, the filter then done.

        A fresh filter given a text that nothing in it can change passes it as it
        is, without the two scans: every scan `feed` and `flush` make is of a
        stretch of the text (nothing was cut out of it before), and `quiet` holds of
        every stretch of a text it holds of (its tests are characters, words and
        literal prefixes: none looks past the stretch); a placeholder needs `<`; a
        link target `](`, `<` or `]:` (`quiet` rules out `:`).  The canary is
        watched for and the state left as `feed` and `flush` leave it.
        """
        fresh = not self._pending and not self._context and self._drop_until is None
        if not fresh or len(text) > PIECE or "<" in text or "](" in text or not quiet(text):
            return self.feed(text) + self.flush()
        if self._watch is not None:
            self._watch.feed(text)
        self._context = text[-_CONTEXT:]
        self._quiet_context = True  # a stretch of a quiet text
        self._offset += len(text)
        return text

    def _feed(self, text: str) -> str:
        if self._watch is not None:
            self._watch.feed(text)
        if self._drop_until is not None:
            text = self._drop(text)
        if not text:
            return ""
        self._pending += text
        return self._release(final=False)

    def flush(self) -> str:
        """The end of the response: return everything still held, filtered."""
        self._drop_until = None
        return self._release(final=True) if self._pending else ""

    def _drop(self, text: str) -> str:
        """Drop the rest of an entity or target already replaced; return what follows it."""
        assert self._drop_until is not None
        buffer = self._drop_tail + text
        m = self._drop_until.search(buffer)
        dropped = buffer if m is None else buffer[: m.end()]
        # What was dropped still precedes what comes next: look-behinds see it.
        self._context = (self._context + dropped[len(self._drop_tail) :])[-_CONTEXT:]
        self._quiet_context = False  # not known: what was dropped was never looked at
        if m is None:
            self._offset += len(text)
            self._drop_tail = buffer[-_CONTEXT:] if self._drop_until is PEM_END else ""
            return ""
        rest = buffer[m.end() :]
        self._offset += len(text) - len(rest)
        self._drop_until, self._drop_tail = None, ""
        return rest

    def _release(self, *, final: bool) -> str:
        pending = self._pending
        cut = len(pending) if final else self._hold_from(pending)
        out: list[str] = []
        position = 0
        for edit in self._edits(pending):
            if edit.start >= cut:
                break
            out.append(pending[position : edit.start])
            if not final and not edit.complete and edit.until is not None:
                out.append(self._cut_off(edit, pending))
                position = cut = len(pending)
                break
            out.append(self._render(edit, pending[edit.start : edit.end]))
            position = edit.end
            cut = max(cut, edit.end)
        out.append(pending[position:cut])
        self._context = (self._context + pending[:cut])[-_CONTEXT:]
        self._quiet_context = self._quiet_scan  # a stretch of the scan, quiet if it was
        self._offset += cut
        self._pending = pending[cut:]
        return "".join(out)

    def _hold_from(self, pending: str) -> int:
        """Where the tail that could still be part of a match begins (see the module docstring)."""
        floor = max(0, len(pending) - self._window)
        i = len(pending)
        while i > floor:
            c = pending[i - 1]
            if c in _RUN or (c == " " and i >= 2 and pending[i - 2] in _GROUP):
                i -= 1
            else:
                break
        target = pending.rfind("](", floor)
        if 0 <= target < i and ")" not in pending[target:]:
            i = target
        tag = pending.rfind("<", floor)
        if 0 <= tag < i and ">" not in pending[tag:] and pending[tag + 1 : tag + 2] in _TAG_START:
            i = tag
        return i

    def _edits(self, pending: str) -> list[_Edit]:
        scan = self._context + pending
        base = len(self._context)
        # `quiet(scan)`, looking again only at the end of a context already known quiet
        # (`QUIET_REACH`): a stream's context is scanned with every piece that follows it.
        if self._quiet_context:
            self._quiet_scan = quiet(self._context[1 - QUIET_REACH :] + pending)
        else:
            self._quiet_scan = quiet(scan)
        found = [] if self._quiet_scan else self._scanner.find_loud(scan)
        edits = [self._entity_edit(f, scan) for f in found]
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
            return edits  # the common piece of prose: nothing to change
        return _shift(_non_overlapping([e for e in edits if e.start >= base]), -base)

    @staticmethod
    def _entity_edit(finding: Finding, scan: str) -> _Edit:
        if finding.entity is Entity.PRIVATE_KEY:
            complete = PEM_END.search(scan, finding.start, finding.end) is not None
        else:
            complete = finding.end < len(scan)
        return _Edit(finding.start, finding.end, finding, "", complete, _UNTIL.get(finding.entity))

    def _render(self, edit: _Edit, value: str) -> str:
        if edit.finding is None:
            return edit.text
        finding = edit.finding.shifted(self._offset)
        action = self._action_of(finding.entity)
        if action is Action.BLOCK:
            raise ContentBlocked(
                "The response was stopped by the content filter.", reasons=(reason(finding.entity),)
            )
        self._findings.append(finding)
        if action is Action.PSEUDONYMIZE:
            return value  # A value the model wrote itself is the caller's to see.
        return replacement(finding, value, action, None)

    def _cut_off(self, edit: _Edit, pending: str) -> str:
        """Replace an entity or target that may go on past what has arrived; drop its rest."""
        value = pending[edit.start :]
        if edit.finding is None:
            text = edit.text
        else:
            self._render(edit, value)
            if self._action_of(edit.finding.entity) in (Action.DETECT, Action.PSEUDONYMIZE):
                return value
            text = redaction(edit.finding.entity)
        self._drop_until = edit.until
        self._drop_tail = value[-_CONTEXT:] if edit.until is PEM_END else ""
        return text


def _pieces(text: str) -> Iterator[str]:
    """`text` in pieces of about `PIECE` characters, each ending just after a space or line
    end where one comes within `MAX_WINDOW` characters.  The filter is built to be cut
    anywhere (it holds back what may go on); a cut at a space also keeps runs longer than
    the window whole, which a cut inside one would not."""
    start = 0
    while len(text) - start > PIECE:
        found = _BREAK.search(text, start + PIECE, start + PIECE + MAX_WINDOW)
        end = found.end() if found is not None else start + PIECE
        yield text[start:end]
        start = end
    yield text[start:]


def _non_overlapping(edits: list[_Edit]) -> list[_Edit]:
    kept: list[_Edit] = []
    for edit in sorted(edits, key=lambda e: (e.start, -(e.end - e.start))):
        if not kept or edit.start >= kept[-1].end:
            kept.append(edit)
    return kept


def _shift(edits: list[_Edit], by: int) -> list[_Edit]:
    return [
        _Edit(e.start + by, e.end + by, e.finding.shifted(by) if e.finding else None, e.text,
              e.complete, e.until)
        for e in edits
    ]  # fmt: skip
