"""The entry point the gateway calls: one `Guard` per tenant configuration.

`scan_request` checks and rewrites a request body (chat, completions,
embeddings) before it goes upstream; `output_filter` makes the filter for
one response.  Both take the tenant's `GuardConfig` as given: nothing in
the request can switch a guard off.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkhead.errors import ContentBlocked, InvalidRequest, PayloadTooLarge, PermissionDenied
from bulkhead.guard._actions import reason, refuse_blocked, rewrite
from bulkhead.guard._canary import Canary, inject_canary
from bulkhead.guard._classifier import InjectionClassifier
from bulkhead.guard._config import GuardConfig, InjectionMode
from bulkhead.guard._entities import Entity, Finding
from bulkhead.guard._injection import InjectionDetector, InjectionResult, LearnedStage
from bulkhead.guard._links import LinkPolicy
from bulkhead.guard._pseudonym import PseudonymVault
from bulkhead.guard._scan import EntityScanner
from bulkhead.guard._slots import TextSlot, text_at, text_slots, with_texts
from bulkhead.guard._stream import StreamFilter

# Fields that ask for log probabilities, by name; every other name with "logprob" in it
# too (a server's next alias).  Only null and false leave them off: a completion's
# `logprobs: 0` still returns the sampled token's, and vLLM's `prompt_logprobs: 0` the
# prompt's own.
LOGPROB_FIELDS = ("logprobs", "top_logprobs", "prompt_logprobs", "n_probs")
# How much text one request may hold for `scan_request` (the gateway's bounds): about a
# second of scanning on one core, some 250,000 tokens of English.
MAX_SCAN_CHARS = 1024 * 1024
MAX_SCAN_TEXTS = 16_384
# What the model does not read as text, so scanning it for injection would only
# mislead (tool calls are the model's own words; `field` holds stop sequences and the like).
_NOT_PROSE = frozenset({"tool_call", "field"})


@dataclass(frozen=True, slots=True)
class RequestVerdict:
    """What `scan_request` decided.

    `body` is the request to send upstream (a rewritten copy, or the original
    when nothing changed); `vault` restores pseudonyms in the response and
    must go no further than this request's output filter.
    """

    body: Any = field(repr=False)
    findings: tuple[Finding, ...]
    injection: InjectionResult
    injection_flagged: bool
    vault: PseudonymVault

    def reasons(self) -> tuple[str, ...]:
        """Labels for the audit log: `pii:email`, `secret:api_key`, `injection:override:en`."""
        found = sorted({reason(f.entity) for f in self.findings})
        if not self.injection_flagged:
            return tuple(found)
        return (*found, *(f"injection:{r}" for r in self.injection.reasons))

    def summary(self) -> str:
        """One line safe for any log: entity counts and the injection score, never the text."""
        counts = Counter(f.entity.value for f in self.findings)
        found = ", ".join(f"{name}x{n}" for name, n in sorted(counts.items())) or "none"
        flag = " flagged" if self.injection_flagged else ""
        return f"entities: {found}; {self.injection.summary()}{flag}"


class Guard:
    """A tenant's guards, built once per configuration and shared by its requests."""

    def __init__(
        self,
        config: GuardConfig,
        *,
        classifier: InjectionClassifier | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.config = config
        # Each entity's action, looked up once: a scan full of entities asks for one twice
        # per finding, and the dictionary answers several times faster than `action_for`.
        self._action_of = {entity: config.action_for(entity) for entity in Entity}.__getitem__
        self._scanner = EntityScanner(
            config.enabled_entities(), phone_regions=config.phone_regions, today=today
        )
        self._output_scanner = self._scanner if config.scan_output else EntityScanner(())
        self._injection = (
            None
            if config.injection is InjectionMode.OFF
            else InjectionDetector(
                classifier=classifier,
                learned=_learned_scorer() if config.injection_learned else None,
                threshold=config.injection_threshold,
            )
        )
        self._links = LinkPolicy(
            config.allowed_link_hosts,
            strip_images=config.strip_images,
            strip_links=config.strip_links,
        )

    def scan_request(
        self,
        body: Any,
        *,
        canary: Canary | None = None,
        max_chars: int | None = None,
        max_texts: int | None = None,
        fine_tuned: bool = False,
    ) -> RequestVerdict:
        """Check and rewrite a request body, or a bare list of chat messages.

        Raises `PermissionDenied` for logprobs the tenant does not allow and
        `ContentBlocked` for an entity set to `block` or an injection at or
        above the threshold in `block` mode.  With `canary` (and the canary
        on) the returned body carries it in its system prompt.  A body with
        more than `max_texts` texts or `max_chars` characters of them is
        refused (`PayloadTooLarge`) before any is scanned: it is never let
        through unscanned.  A call to a `fine_tuned` model needs
        `allow_fine_tuned_logprobs` as well for logprobs.
        """
        wrapped = isinstance(body, list)
        if not wrapped and not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        request: dict[str, Any] = {"messages": body} if wrapped else body
        self._check_logprobs(request, fine_tuned)
        slots = _bounded(text_slots(request), max_chars, max_texts)
        found = [(slot, self._scanner.find(slot.text)) for slot in slots]
        findings = tuple(_located(found))
        refuse_blocked(findings, self._action_of, output=False)
        vault = PseudonymVault()
        rewrites = {
            slot.path: rewrite(slot.text, fs, self._action_of, vault) for slot, fs in found if fs
        }
        injection = self._scan_injection(slots)
        flagged = self._injection is not None and injection.flagged(self.config.injection_threshold)
        if flagged and self.config.injection is InjectionMode.BLOCK:
            raise ContentBlocked(
                "The request was refused by the prompt-injection filter.",
                reasons=tuple(f"injection:{r}" for r in injection.reasons),
            )
        out = with_texts(request, {p: t for p, t in rewrites.items() if t != text_at(request, p)})
        if canary is not None and self.config.canary:
            out = inject_canary(out, canary)
        return RequestVerdict(
            out["messages"] if wrapped else out, findings, injection, flagged, vault
        )

    def output_filter(
        self, vault: PseudonymVault | None = None, canary: Canary | None = None
    ) -> StreamFilter:
        """A filter for one response (one choice of it): `feed` each piece, then `flush`."""
        return StreamFilter(
            scanner=self._output_scanner,
            action_of=self._action_of,
            vault=vault,
            canary=canary if self.config.canary else None,
            links=self._links,
            window=self.config.stream_window,
        )

    def filter_text(
        self, text: str, *, vault: PseudonymVault | None = None, canary: Canary | None = None
    ) -> str:
        """Filter a complete (non-streamed) response text."""
        return self.output_filter(vault, canary).whole(text)

    def _check_logprobs(self, request: dict[str, Any], fine_tuned: bool = False) -> None:
        allowed = self.config.allow_logprobs
        if allowed and (not fine_tuned or self.config.allow_fine_tuned_logprobs):
            return
        name = asks_for_logprobs(request)
        if name is None:
            return
        if not allowed:
            raise PermissionDenied(
                f"'{name}' is not enabled for this tenant.",
                param=name,
                policy="guard.allow_logprobs",
            )
        # Membership inference on a model trained on the tenant's own data.
        raise PermissionDenied(
            f"'{name}' is not enabled for this tenant's fine-tuned models.",
            param=name,
            policy="guard.allow_fine_tuned_logprobs",
        )

    def _scan_injection(self, slots: Sequence[TextSlot]) -> InjectionResult:
        if self._injection is None:
            return InjectionResult()
        # Embedding inputs are not prompts, and tool-call arguments are the model's own words.
        messages = (
            (s.role, s.text) for s in slots if s.path[0] != "input" and s.role not in _NOT_PROSE
        )
        return self._injection.scan_messages(messages)


def _located(found: list[tuple[TextSlot, list[Finding]]]) -> Iterator[Finding]:
    for slot, findings in found:
        if findings:
            where = slot.where
            yield from (f.at(where) for f in findings)


def asks_for_logprobs(request: Mapping[str, Any]) -> str | None:
    """The first field of `request` that asks for log probabilities, if any."""
    for name, value in request.items():
        if (
            (name in LOGPROB_FIELDS or "logprob" in name)
            and value is not None
            and value is not False
        ):
            return name
    return None


def check_text_bounds(request: dict[str, Any], *, max_chars: int, max_texts: int) -> None:
    """Refuse (`PayloadTooLarge`) a body whose texts `scan_request` would refuse to scan.

    Cheap next to a scan or a token count: the gateway asks it first of large bodies.
    """
    _bounded(text_slots(request), max_chars, max_texts)


def _bounded(
    slots: Iterator[TextSlot], max_chars: int | None, max_texts: int | None
) -> list[TextSlot]:
    """The slots, or `PayloadTooLarge` as soon as they pass either bound."""
    if max_chars is None and max_texts is None:
        return list(slots)
    kept: list[TextSlot] = []
    chars = 0
    for slot in slots:
        kept.append(slot)
        chars += len(slot.text)
        if max_texts is not None and len(kept) > max_texts:
            raise PayloadTooLarge(
                f"The request holds more than {max_texts} texts; the guard scans no more.",
                code="guard_scan_limit",
            )
        if max_chars is not None and chars > max_chars:
            raise PayloadTooLarge(
                f"The request's texts exceed {max_chars} characters; the guard scans at most that"
                " many per request.",
                code="guard_scan_limit",
            )
    return kept


def _learned_scorer() -> LearnedStage:
    """The shipped learned model, imported only for a tenant that turned it on: numpy and
    the model's files stay out of a gateway none of whose tenants uses it."""
    from bulkhead.guard.learned import shared_scorer

    return shared_scorer()
