"""Prompt-injection scoring: rules over the normalised text, decoded payloads, a classifier.

A text's score combines its reasons as a noisy OR, each reason counted
once at its highest weight: `1 - Π(1 - w)`.  Matches in material the user
did not write - tool and function results, or what follows a "Document:"
line - add the `indirect` reason, since instructions have no business
there.  A tenant's classifier, when given, scores each text too; the result
is the higher of the two.  A learned stage (`guard/learned`), when given,
scores the texts the rules pass (below `threshold`); it counts only where it
flags, with the reason `learned`, so a verdict names the stage that fired.
It never overturns what the rules flag: a session 16 veto (weak English rules
overturned where the stage scored the text under 0.1) was removed in review, since
words the stage learned as benign, written around or inside the matched phrase,
bought any weak-rule attack a pass.
Where the rules let an attack phrase pass as a mere mention, the stage reads the
whole text as it is: a session 16 second read with the quotation blanked was
removed in review, since a quoted attack put to work by words the mention rules
do not know as an obey cue then passed both stages (the stage is the backstop of
the rules' discount, not a second discount).

A long text is read in the entity scanner's windows (`_scan.WINDOW`, with
its margin): normalising and matching a whole megabyte are C calls that
would hold the interpreter lock for tens of milliseconds.  Reasons are kept
at their highest weight, so the overlaps count once; once a window has
started quoting material, every later window is quoted material too.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from bulkhead.guard._classifier import InjectionClassifier
from bulkhead.guard._mention import (
    MENTION_MAX,
    MENTIONABLE,
    Mentions,
    asks_to_act_on_another,
    mentions,
)
from bulkhead.guard._normalize import Normalized, deleet, leet_words, normalize, unsplit_cjk
from bulkhead.guard._rulebook import Rule, RuleIndex, words_of
from bulkhead.guard._rules_addressed import ADDRESSED
from bulkhead.guard._rules_en import ENGLISH
from bulkhead.guard._rules_roleplay import ROLEPLAY
from bulkhead.guard._rules_zh import CHINESE, DELIMITERS
from bulkhead.guard._rules_zh_direct import DIRECT
from bulkhead.guard._scan import MARGIN, WINDOW

RULES: tuple[Rule, ...] = ENGLISH + CHINESE + DELIMITERS + ROLEPLAY + ADDRESSED + DIRECT

SIGNAL_WEIGHTS: dict[str, float] = {
    "hidden:unicode_tags": 0.75,
    "hidden:zero_width": 0.3,
    "hidden:bidi": 0.3,
    "obfuscation:homoglyph": 0.35,
}
"""What each disguise found by `normalize` weighs on its own."""

INDIRECT_ROLES = frozenset({"tool", "function", "ipython"})
"""Message roles whose content comes from tools, not from the user."""
SKIPPED_ROLES = frozenset({"system", "developer"})
"""The tenant's own instructions, which are not scanned."""

_INDIRECT_WEIGHT = 0.35
_INDIRECT_FLOOR = 0.4
_CLASSIFIER_REASON = "classifier"
_LEARNED_REASON = "learned"
_BASE64 = re.compile(r"[A-Za-z0-9+/_\-]{24,}={0,2}")
_MIN_PAYLOAD = 24
_MIN_PAYLOAD_RUN = 16
# Where a user message starts quoting material it did not write (RAG
# context, a pasted page): a label line, a wrapping tag, a Chinese lead-in.
_LABEL_LINE = re.compile(
    r"\s*(?:document|context|retrieved(?: context| documents?)?|search results?|web page|source|"
    r"email|article|文档|上下文|资料|网页内容|检索结果|邮件)\s*[:\uff1a]"
)
_QUOTE_TAG = re.compile(
    r"<(?:document|context|search_results?)>|以下是(?:网页|文档|文章|邮件|检索)"
)


@dataclass(frozen=True, slots=True)
class InjectionResult:
    """A score in [0, 1] and the reasons behind it (rule names, never the matched text)."""

    score: float = 0.0
    reasons: tuple[str, ...] = ()

    def flagged(self, threshold: float) -> bool:
        return self.score >= threshold

    def summary(self) -> str:
        return f"injection {self.score:.2f} [{', '.join(self.reasons)}]"


CLEAN = InjectionResult()
"""What a text without a single hit scores (results are frozen: one is shared)."""


def _noisy_or(weights: Iterable[float]) -> float:
    remaining = 1.0
    for weight in weights:
        remaining *= 1.0 - weight
    return round(1.0 - remaining, 4)


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    shown = sum(c.isprintable() or c.isspace() for c in text)
    return text if text and shown >= 0.9 * len(text) else None


# Each byte of a base64 character as `x`, any other byte as a space: an ASCII text whose
# bytes so mapped hold no `_MIN_PAYLOAD` x's in a row holds no `_BASE64` run.  Two C passes
# and a byte search, where splitting a 4 KiB prompt into its words costs ten times more.
_BASE64_BYTES = bytes(
    0x78 if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "+/_-") else 0x20
    for b in range(256)
)
_BASE64_RUN = b"x" * _MIN_PAYLOAD


def _decoded_payloads(text: str) -> Iterable[str]:
    """The readable texts hidden in base64 (standard or URL-safe) runs of `text`."""
    # (Only ASCII: the UTF-8 of Chinese costs more to make than its few words to split.)
    if text.isascii() and _BASE64_RUN not in text.encode("ascii").translate(_BASE64_BYTES):
        return
    tokens = text.split()
    if not tokens or max(map(len, tokens)) < _MIN_PAYLOAD:
        return
    for token in tokens:
        if len(token) < _MIN_PAYLOAD:
            continue
        for m in _BASE64.finditer(token):
            yield from _decoded(m.group())


def _decoded(blob: str) -> Iterable[str]:
    standard = blob.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        data = base64.b64decode(standard + "=" * (-len(standard) % 4))
    except (binascii.Error, ValueError):
        return
    decoded = _printable(data)
    if decoded is not None:
        yield decoded


class _Hits:
    """The highest weight per reason, whether any strong one fell in quoted material, and
    whether a match was let pass as a mere mention (`discounted`).
    """

    def __init__(self) -> None:
        self.weights: dict[str, float] = {}
        self.indirect = False
        self.discounted = False

    def add(self, reason: str, weight: float, *, indirect: bool = False) -> None:
        if weight > self.weights.get(reason, 0.0):
            self.weights[reason] = weight
        if indirect and weight >= _INDIRECT_FLOOR:
            self.indirect = True

    def result(self) -> InjectionResult:
        if self.indirect:
            self.add("indirect", _INDIRECT_WEIGHT)
        return InjectionResult(_noisy_or(self.weights.values()), tuple(sorted(self.weights)))


class LearnedStage(Protocol):
    """A second stage over what the rules pass: a score on the detector's scale (0.5 flags)."""

    def score(self, text: str, *, indirect: bool = False) -> float: ...


class InjectionDetector:
    """Scores texts and chat messages; `rules`, `classifier` and `learned` are passed in."""

    def __init__(
        self,
        *,
        rules: tuple[Rule, ...] = RULES,
        classifier: InjectionClassifier | None = None,
        learned: LearnedStage | None = None,
        threshold: float = 0.5,
    ) -> None:
        self._index = RuleIndex(rules)
        self._classifier = classifier
        self._learned = learned
        self._threshold = threshold

    def scan(self, text: str, *, indirect: bool = False) -> InjectionResult:
        """Score one text; `indirect` says it came from a tool or a document, not the user."""
        return self._scan(text, indirect=indirect)[0]

    def _scan(
        self, text: str, *, indirect: bool, discount: bool = True
    ) -> tuple[InjectionResult, bool]:
        """The score of one text, and whether a mentioned phrase went uncounted (`discount`:
        whether one may).
        """
        hits = _Hits()
        if len(text) <= WINDOW + 2 * MARGIN:
            self._scan_into(hits, text, indirect=indirect, depth=0, discount=discount)
        else:
            quoted = False
            for start in range(0, len(text), WINDOW):
                piece = text[max(0, start - MARGIN) : start + WINDOW + MARGIN]
                quoted = self._scan_into(hits, piece, indirect=indirect, depth=0, quoted=quoted)
        # No rule and no signal hit (most texts): the result is `CLEAN`, the same value
        # `hits.result()` would build (a noisy OR of nothing is 0.0, no reasons).
        result = hits.result() if hits.weights else CLEAN
        result = self._with_learned(result, text, indirect)
        return self._with_classifier(result, text), hits.discounted

    def scan_messages(self, messages: Iterable[tuple[str, str]]) -> InjectionResult:
        """Score `(role, text)` pairs: the highest-scoring message, with every message's reasons."""
        said = [(role, text) for role, text in messages if role not in SKIPPED_ROLES and text]
        scans = [self._scan(text, indirect=role in INDIRECT_ROLES) for role, text in said]
        # One message may ask for what another only mentions to be carried out ("translate:
        # '…'", then "now do what it says"): then no message's mention goes uncounted.
        if any(discounted for _, discounted in scans) and any(
            asks_to_act_on_another(normalize(text).text) for _, text in said
        ):
            scans = [
                self._scan(text, indirect=role in INDIRECT_ROLES, discount=False)
                if discounted
                else (result, False)
                for (role, text), (result, discounted) in zip(said, scans, strict=True)
            ]
        best = InjectionResult()
        reasons: set[str] = set()
        for result, _ in scans:
            reasons.update(result.reasons)
            if result.score > best.score:
                best = result
        if not reasons:  # then `best` has none either: it is the result as it stands
            return best
        return InjectionResult(best.score, tuple(sorted(reasons)))

    def _scan_into(
        self,
        hits: _Hits,
        text: str,
        *,
        indirect: bool,
        depth: int,
        quoted: bool = False,
        discount: bool = False,
    ) -> bool:
        """Add what `text` holds to `hits`; whether it quotes material (`quoted`: all of it)."""
        normalized = normalize(text)
        for signal in normalized.signals:
            hits.add(signal, SIGNAL_WEIGHTS[signal], indirect=indirect)
        words = words_of(normalized.text)
        quoted_from = 0 if quoted else _quote_start(normalized)
        self._match(
            hits,
            normalized.text,
            words,
            indirect=indirect,
            quoted_from=quoted_from,
            user_speech=discount and depth == 0 and not indirect and len(text) <= MENTION_MAX,
        )
        for variant in self._variants(normalized, words):
            folded = normalize(variant).text
            self._match(hits, folded, words_of(folded), indirect=indirect, quoted_from=None)
        # Base64 of a sentence has long letter-and-digit runs; without one,
        # there is nothing to decode.
        if depth == 0 and words and max(map(len, words)) >= _MIN_PAYLOAD_RUN:
            self._scan_payloads(hits, text, indirect=indirect)
        return quoted_from is not None

    def _variants(self, normalized: Normalized, words: set[str]) -> Iterable[str]:
        """Other readings of the text: invisible characters as spaces, the ASCII hidden in
        tag characters, Chinese split a character at a time read joined, and digits as
        letters when that makes an anchor word appear.
        """
        if normalized.spaced:
            yield normalized.spaced
        joined = unsplit_cjk(normalized.text)
        if joined is not normalized.text:
            yield joined
        if normalized.hidden:
            yield normalized.hidden
        if self._index.words.intersection(leet_words(words)):
            yield deleet(normalized.text)

    def _scan_payloads(self, hits: _Hits, text: str, *, indirect: bool) -> None:
        for payload in _decoded_payloads(text):
            inner = _Hits()
            self._scan_into(inner, payload, indirect=indirect, depth=1)
            for reason, weight in inner.weights.items():
                hits.add(reason, weight, indirect=indirect)
                hits.add("encoded:base64", min(1.0, weight + 0.05), indirect=indirect)

    def _match(
        self,
        hits: _Hits,
        text: str,
        words: set[str],
        *,
        indirect: bool,
        quoted_from: int | None,
        user_speech: bool = False,
    ) -> None:
        """Add each rule's first counted match; `user_speech`: the user's own plain text, where
        a phrase the user only mentions (`_mention`) is not counted.
        """
        said: Mentions | None = None
        for rule in self._index.candidates(text, words):
            for m in rule.finditer(text):
                if rule.unless is not None and rule.unless.search(m.group()):
                    continue
                quoted = quoted_from is not None and m.start() >= quoted_from
                category = rule.name.split(":")[0]
                if user_speech and not quoted and category in MENTIONABLE:
                    said = said or mentions(text)
                    if said.mentioned(m.start(), m.end(), category):
                        hits.discounted = True
                        continue
                hits.add(rule.name, rule.weight, indirect=indirect or quoted)
                break

    def _with_learned(self, result: InjectionResult, text: str, indirect: bool) -> InjectionResult:
        if self._learned is None or result.score >= self._threshold:
            return result
        score = self._learned.score(text, indirect=indirect)
        if score < self._threshold or score <= result.score:
            return result
        return InjectionResult(score, tuple(sorted({*result.reasons, _LEARNED_REASON})))

    def _with_classifier(self, result: InjectionResult, text: str) -> InjectionResult:
        if self._classifier is None:
            return result
        score = min(1.0, max(0.0, float(self._classifier.score(text))))
        if score <= result.score:
            return result
        reasons = tuple(sorted({*result.reasons, _CLASSIFIER_REASON}))
        return InjectionResult(round(score, 4), reasons)


def _quote_start(normalized: Normalized) -> int | None:
    """Where quoted material starts in a normalised text, if it says so."""
    text = normalized.text
    found = []
    if "<" in text or "以下是" in text:
        tag = _QUOTE_TAG.search(text)
        if tag:
            found.append(tag.end())
    if ":" not in text and "\uff1a" not in text:  # a label line needs its colon
        return found[0] if found else None
    position = 0
    for line in text.split("\n"):
        if ":" in line[:24] or "\uff1a" in line[:24]:
            m = _LABEL_LINE.match(line)
            if m:
                found.append(position + m.end())
                break
        position += len(line) + 1
    return min(found, default=None)
