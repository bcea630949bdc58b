"""Every text a choice carries, each through its own `StreamFilter`: what `guard_out` filters.

A choice's text is more than its content: a chat answer also says things in
`refusal` and `reasoning_content`, in the function names and JSON arguments
of its `tool_calls` (and the legacy `function_call`), and, with logprobs on,
once more token by token in `logprobs` (`content[].token` and each of its
`top_logprobs`; a completion's `tokens` and `top_logprobs` keys).  Each of
these streams has a filter of its own, so a value split across deltas (a
card number across three argument deltas) is still seen whole, exactly as
in content.

Logprob tokens are fed one by one to their stream's filter; each entry gets
the text the filter released at that point (empty while it holds text
back), its `bytes` follow its new token, and an entry whose token changed
and holds a digit or a symbol of addresses and keys loses its alternatives
(`top_logprobs`): beside a redacted token they could only tell what was
there.  Alternatives elsewhere are filtered one by one.
What a filter still holds when its choice finishes goes out in the extra
event before the finishing one (`ChoiceFilter.finish`), logprob text as one
entry of logprob 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bulkhead.guard import StreamFilter

_TEXT_FIELDS = ("content", "refusal", "reasoning_content")
# A token held back or changed that holds one of these may be part of a number, an address or
# a key: its alternatives go (beside it they tell what was there).  A word held back only
# until the next space keeps them.
_SENSITIVE = re.compile(r"[0-9@:/=+_\-]")
Key = tuple[str | int, ...]


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class ChoiceFilter:
    """The filters of one choice: `apply` to each event's choice (or a whole one), in order."""

    def __init__(self, make: Callable[[], StreamFilter], *, chat: bool) -> None:
        self._make = make
        self._chat = chat
        self._streams: dict[Key, StreamFilter] = {}
        self._whole = False
        # Where the last event's released text went, by stream: `close` moves it.
        self._placed: dict[Key, tuple[dict[str, Any], str]] = {}

    def apply(self, choice: dict[str, Any], *, whole: bool = False) -> None:
        """Filter `choice` in place; `whole`: a complete answer (every filter flushed at once)."""
        self._whole = whole
        self._placed = {}
        holder = choice.get("message") if whole else choice.get("delta")
        if self._chat and isinstance(holder, dict):
            for field in _TEXT_FIELDS:
                self._field(holder, field, (field,))
            self._tool_calls(holder)
            call = holder.get("function_call")
            if isinstance(call, dict):
                for part in ("name", "arguments"):
                    self._field(call, part, ("function_call", part))
        elif not self._chat:
            self._field(choice, "text", ("content",))
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            self._logprobs(logprobs)

    def apply_text(self, holder: dict[str, Any], field: str) -> None:
        """`apply` to a choice whose only text is `holder[field]` (a delta's content, a
        completion's text): the same state and result, without looking for the others."""
        self._whole = False
        self._placed = {}
        self._field(holder, field, ("content",))

    def finish(self) -> dict[Key, str]:
        """What every filter still holds, by stream; the filters are done."""
        held = {key: stream.flush() for key, stream in self._streams.items()}
        self._streams.clear()
        return {key: text for key, text in held.items() if text}

    def close(self, choice: dict[str, Any]) -> dict[Key, Any]:
        """Finish with the choice's finishing event: what the filters held, with what this
        event released for those streams moved out of it (the extra event goes before it)."""
        held: dict[Key, Any] = dict(self.finish())
        for key in list(held):
            place = self._placed.get(key)
            if place is None:
                continue
            holder, field = place
            if key == ("logprobs",):
                moved = holder.get(field) or []
                holder[field] = [] if isinstance(holder.get(field), list) else holder.get(field)
                held[key] = (moved if isinstance(moved, list) else [], held[key])
            else:
                held[key] = str(holder.get(field) or "") + held[key]
                holder[field] = ""
        return held

    def _feed(self, key: Key, text: str, *, piece: bool = False) -> str:
        """`text` through the stream `key`; in a whole answer, flushed unless it is a `piece`
        of the stream (a logprob token: `_logprobs` flushes after the last)."""
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = self._make()
        if not self._whole or piece:
            return stream.feed(text)
        out = stream.whole(text)  # `feed` and `flush`, or the text where nothing can change
        del self._streams[key]
        return out

    def _field(self, holder: dict[str, Any], field: str, key: Key) -> None:
        text = _str(holder.get(field))
        if text is not None:
            holder[field] = self._feed(key, text)
            self._placed[key] = (holder, field)

    def _tool_calls(self, holder: dict[str, Any]) -> None:
        calls = holder.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                continue
            # A stream names each call by `index` across its deltas; a whole answer by position.
            index = call.get("index", position) if not self._whole else position
            index = index if isinstance(index, int) else position
            for part in ("name", "arguments"):
                self._field(function, part, ("tool", index, part))

    def _logprobs(self, logprobs: dict[str, Any]) -> None:
        entries = logprobs.get("content")
        if isinstance(entries, list) and self._chat:
            self._placed[("logprobs",)] = (logprobs, "content")
        for entry in entries if isinstance(entries, list) else ():
            token = _str(entry.get("token")) if isinstance(entry, dict) else None
            if token is None:
                continue
            out = self._feed(("logprobs",), token, piece=True)
            entry["token"] = out
            if isinstance(entry.get("bytes"), list):
                entry["bytes"] = list(out.encode())
            if out != token and _SENSITIVE.search(token):
                entry["top_logprobs"] = []
            else:
                entry["top_logprobs"] = [
                    self._alternative(a) for a in entry.get("top_logprobs") or ()
                ]
        tokens = logprobs.get("tokens")
        if isinstance(tokens, list):  # completions
            self._completion_tokens(logprobs, tokens)
        if self._whole:
            self._last_token(logprobs)

    def _last_token(self, logprobs: dict[str, Any]) -> None:
        """A whole answer's held logprob text, added to its last token."""
        stream = self._streams.pop(("logprobs",), None)
        rest = stream.flush() if stream is not None else ""
        if not rest:
            return
        entries, tokens = logprobs.get("content"), logprobs.get("tokens")
        if isinstance(entries, list) and entries and isinstance(entries[-1], dict):
            last = entries[-1]
            last["token"] = str(last.get("token") or "") + rest
            if isinstance(last.get("bytes"), list):
                last["bytes"] = list(last["token"].encode())
            last["top_logprobs"] = []
        elif isinstance(tokens, list) and tokens:
            tokens[-1] = str(tokens[-1] or "") + rest
            tops = logprobs.get("top_logprobs")
            if isinstance(tops, list) and len(tops) == len(tokens):
                tops[-1] = {}

    def _alternative(self, alternative: Any) -> Any:
        token = _str(alternative.get("token")) if isinstance(alternative, dict) else None
        if token is None:
            return alternative
        stream = self._make()
        out = stream.feed(token) + stream.flush()
        if out == token:
            return alternative
        changed = dict(alternative, token=out)
        if isinstance(changed.get("bytes"), list):
            changed["bytes"] = list(out.encode())
        return changed

    def _completion_tokens(self, logprobs: dict[str, Any], tokens: list[Any]) -> None:
        tops = logprobs.get("top_logprobs")
        for i, token in enumerate(tokens):
            if not isinstance(token, str):
                continue
            tokens[i] = out = self._feed(("logprobs",), token, piece=True)
            if isinstance(tops, list) and i < len(tops) and isinstance(tops[i], dict):
                changed = out != token and _SENSITIVE.search(token)
                tops[i] = {} if changed else self._alternatives(tops[i])

    def _alternatives(self, top: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for token, value in top.items():
            stream = self._make()
            out[stream.feed(token) + stream.flush()] = value
        return out


def held_delta(held: dict[Key, Any], *, chat: bool) -> dict[str, Any]:
    """The choice fields of an extra event that carries `held` (from `finish` or `close`)."""
    choice: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    calls: dict[int, dict[str, Any]] = {}
    for key, value in held.items():
        if key == ("logprobs",):
            moved, text = value if isinstance(value, tuple) else ([], value)
            if chat:
                entry = {"token": text, "logprob": 0.0, "bytes": list(text.encode())}
                choice["logprobs"] = {"content": [*moved, entry | {"top_logprobs": []}]}
            else:
                choice["logprobs"] = {"tokens": [text], "token_logprobs": [0.0]}
        elif key[0] == "tool" and isinstance(key[1], int):
            call = calls.setdefault(key[1], {"index": key[1], "function": {}})
            call["function"][str(key[2])] = value
        elif key[0] == "function_call":
            fields.setdefault("function_call", {})[str(key[1])] = value
        else:
            fields[str(key[0])] = value
    if calls:
        fields["tool_calls"] = [calls[i] for i in sorted(calls)]
    if chat:
        choice["delta"] = fields
    else:
        choice["text"] = fields.get("content", "")
    return choice
