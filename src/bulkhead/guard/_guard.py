"""The entry point the gateway calls: one `Guard` per tenant configuration.

`scan_request` checks and rewrites a request body (chat, completions,
embeddings) before it goes upstream; `output_filter` makes the filter for
one response.  Both take the tenant's `GuardConfig` as given: nothing in
the request can switch a guard off.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkhead.errors import ContentBlocked, InvalidRequest, PermissionDenied
from bulkhead.guard._actions import reason, refuse_blocked, rewrite
from bulkhead.guard._canary import Canary, inject_canary
from bulkhead.guard._classifier import InjectionClassifier
from bulkhead.guard._config import GuardConfig, InjectionMode
from bulkhead.guard._entities import Finding
from bulkhead.guard._injection import InjectionDetector, InjectionResult
from bulkhead.guard._links import LinkPolicy
from bulkhead.guard._pseudonym import PseudonymVault
from bulkhead.guard._scan import EntityScanner
from bulkhead.guard._stream import StreamFilter

SlotPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class TextSlot:
    """One string of a request body: where it is, whose it is, what it says."""

    path: SlotPath
    role: str
    text: str = field(repr=False)

    @property
    def where(self) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path).lstrip(".")


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
        self._scanner = EntityScanner(
            config.enabled_entities(), phone_regions=config.phone_regions, today=today
        )
        self._output_scanner = self._scanner if config.scan_output else EntityScanner(())
        self._injection = (
            None
            if config.injection is InjectionMode.OFF
            else InjectionDetector(classifier=classifier)
        )
        self._links = LinkPolicy(
            config.allowed_link_hosts,
            strip_images=config.strip_images,
            strip_links=config.strip_links,
        )

    def scan_request(self, body: Any, *, canary: Canary | None = None) -> RequestVerdict:
        """Check and rewrite a request body, or a bare list of chat messages.

        Raises `PermissionDenied` for logprobs the tenant does not allow and
        `ContentBlocked` for an entity set to `block` or an injection at or
        above the threshold in `block` mode.  With `canary` (and the canary
        on) the returned body carries it in its system prompt.
        """
        wrapped = isinstance(body, list)
        if not wrapped and not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        request: dict[str, Any] = {"messages": body} if wrapped else body
        self._check_logprobs(request)
        slots = list(text_slots(request))
        found = [(slot, self._scanner.find(slot.text)) for slot in slots]
        findings = tuple(_located(found))
        refuse_blocked(findings, self.config.action_for, output=False)
        vault = PseudonymVault()
        rewrites = {
            slot.path: rewrite(slot.text, fs, self.config.action_for, vault)
            for slot, fs in found
            if fs
        }
        injection = self._scan_injection(slots)
        flagged = self._injection is not None and injection.flagged(self.config.injection_threshold)
        if flagged and self.config.injection is InjectionMode.BLOCK:
            raise ContentBlocked(
                "The request was refused by the prompt-injection filter.",
                reasons=tuple(f"injection:{r}" for r in injection.reasons),
            )
        out = _apply(request, {p: t for p, t in rewrites.items() if t != _text_at(request, p)})
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
            action_of=self.config.action_for,
            vault=vault,
            canary=canary if self.config.canary else None,
            links=self._links,
            window=self.config.stream_window,
        )

    def filter_text(
        self, text: str, *, vault: PseudonymVault | None = None, canary: Canary | None = None
    ) -> str:
        """Filter a complete (non-streamed) response text."""
        stream = self.output_filter(vault, canary)
        return stream.feed(text) + stream.flush()

    def _check_logprobs(self, request: dict[str, Any]) -> None:
        if self.config.allow_logprobs:
            return
        for name in ("logprobs", "top_logprobs"):
            value = request.get(name)
            if value is not None and value is not False and value != 0:
                raise PermissionDenied(
                    f"'{name}' is not enabled for this tenant.",
                    param=name,
                    policy="guard.allow_logprobs",
                )

    def _scan_injection(self, slots: Sequence[TextSlot]) -> InjectionResult:
        if self._injection is None:
            return InjectionResult()
        # Embedding inputs are not prompts, and tool-call arguments are the model's own words.
        messages = (
            (s.role, s.text) for s in slots if s.path[0] != "input" and s.role != "tool_call"
        )
        return self._injection.scan_messages(messages)


def _located(found: list[tuple[TextSlot, list[Finding]]]) -> Iterator[Finding]:
    for slot, findings in found:
        if findings:
            where = slot.where
            yield from (f.at(where) for f in findings)


def text_slots(request: dict[str, Any]) -> Iterator[TextSlot]:
    """Every string of a chat, completions or embeddings body that reaches the model.

    Message contents (plain, or the text parts of a list), tool-call
    arguments, `prompt` and `input` (strings or lists of strings; token
    arrays are skipped).
    """
    messages = request.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, dict):
                yield from _message_slots(("messages", i), message)
    for key in ("prompt", "input"):
        yield from _string_slots((key,), request.get(key))


def _message_slots(path: SlotPath, message: dict[str, Any]) -> Iterator[TextSlot]:
    role = str(message.get("role") or "user")
    content = message.get("content")
    if isinstance(content, str):
        yield TextSlot((*path, "content"), role, content)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield TextSlot((*path, "content", j, "text"), role, part["text"])
    for k, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            where = (*path, "tool_calls", k, "function", "arguments")
            yield TextSlot(where, "tool_call", function["arguments"])


def _string_slots(path: SlotPath, value: Any) -> Iterator[TextSlot]:
    if isinstance(value, str):
        yield TextSlot(path, "user", value)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield TextSlot((*path, i), "user", item)


def _text_at(request: Any, path: SlotPath) -> Any:
    node = request
    for key in path:
        node = node[key]
    return node


def _apply(request: dict[str, Any], rewrites: dict[SlotPath, str]) -> dict[str, Any]:
    """A copy of `request` with the strings at `rewrites`' paths replaced (the original if none)."""
    if not rewrites:
        return request
    out = copy.deepcopy(request)
    for path, text in rewrites.items():
        _text_at(out, path[:-1])[path[-1]] = text
    return out
