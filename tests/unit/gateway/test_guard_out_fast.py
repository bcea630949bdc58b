"""The output guard's fast path for plain content events gives exactly the slow path's bytes.

`StreamGuard._plain` lets an event with one unfinished choice and only content (or a
completion's text) skip the walk over every field; `Slow` below never takes it.  Both run
over the same random streams — any chunk boundaries, escapes (`\\uXXXX`, surrogate pairs,
quotes and backslashes inside content), several choices, tool calls, logprobs, usage
chunks, comments, keep-alives and `[DONE]` — and must send the same bytes, and a value
split across chunks must still be redacted.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.gateway.guard_out import StreamGuard
from tests.unit.gateway.test_guard_out import guarded

EMAIL = "alice.liddell@example.com"
CARD = "4111 1111 1111 1111"


class Slow(StreamGuard):
    def _plain(self, event: dict[str, Any]) -> None:
        return None


_TEXT = st.lists(
    st.sampled_from(
        [*"ab c.\"\\\n\t:@/", "\u00e9", "\u4e2d", "\U0001f600", "\u2028", "\x00",
         EMAIL, CARD, " 4111", "@example", "https://evil.example/x", "[a](https://x.y)"]
    ),
    max_size=8,
).map("".join)  # fmt: skip


@st.composite
def choice(draw: st.DrawFn, chat: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"index": draw(st.integers(0, 2))}
    finish = draw(st.sampled_from([None, None, None, "stop", "length"]))
    if chat:
        delta: dict[str, Any] = {}
        if draw(st.booleans()):
            delta["role"] = "assistant"
        if draw(st.integers(0, 4)):
            delta["content"] = draw(_TEXT)
        if not draw(st.integers(0, 5)):
            call = {"index": draw(st.integers(0, 1)), "function": {"arguments": draw(_TEXT)}}
            delta["tool_calls"] = [call]
        if not draw(st.integers(0, 8)):
            delta["refusal"] = draw(_TEXT)
        out["delta"] = delta
    else:
        out["text"] = draw(_TEXT)
    if not draw(st.integers(0, 6)):
        token = draw(_TEXT)
        entry = {"token": token, "logprob": -0.1, "bytes": list(token.encode()),
                 "top_logprobs": [{"token": draw(_TEXT), "logprob": -1.0}]}  # fmt: skip
        out["logprobs"] = {"content": [entry]} if chat else {"tokens": [token]}
    elif draw(st.booleans()):
        out["logprobs"] = None
    out["finish_reason"] = finish
    return out


@st.composite
def stream(draw: st.DrawFn, chat: bool) -> bytes:
    kind = "chat.completion.chunk" if chat else "text_completion"
    parts: list[bytes] = []
    for _ in range(draw(st.integers(1, 14))):
        what = draw(st.integers(0, 9))
        if what == 0:
            parts.append(draw(st.sampled_from([b": keep-alive", b":", b"event: ping"])))
            continue
        event: dict[str, Any] = {"id": "c1", "object": kind, "created": 0, "model": "m"}
        if what == 1:
            event |= {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
        else:
            n = 1 if what > 3 else draw(st.integers(2, 3))
            event["choices"] = [draw(choice(chat)) for _ in range(n)]
        # Either orjson's bytes or ASCII JSON with \uXXXX escapes and surrogate pairs.
        ascii_json = draw(st.booleans())
        payload = json.dumps(event).encode() if ascii_json else orjson.dumps(event)
        parts.append(b"data: " + payload)
    if draw(st.booleans()):
        parts.append(b"data: [DONE]")
    return b"".join(p + b"\n\n" for p in parts)


def run(guard: StreamGuard, body: bytes, cuts: list[int]) -> bytes:
    edges = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    messages = [body[a:b] for a, b in itertools.pairwise(edges)] or [b""]
    return b"".join(guard.events(m, final=i == len(messages) - 1) for i, m in enumerate(messages))


def both(body: bytes, cuts: list[int], chat: bool, **config: Any) -> bytes:
    outcomes = []
    for kind in (StreamGuard, Slow):
        try:
            outcomes.append(run(kind(guarded(**config), chat=chat), body, cuts))
        except Exception as exc:  # a refusal must be the same refusal
            outcomes.append(repr(exc).encode())
    fast, slow = outcomes
    assert fast == slow
    return fast


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.data())
def test_the_fast_path_sends_the_slow_paths_bytes(chat: bool, data: st.DataObject) -> None:
    body = data.draw(stream(chat))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    both(body, cuts, chat, pii="redact")
    both(body, cuts, chat, pii="mask", secrets="redact")


def _content(out: bytes) -> str:
    text = []
    for raw in out.split(b"\n\n"):
        payload = raw.removeprefix(b"data: ")
        if payload.startswith(b"{"):
            for c in orjson.loads(payload).get("choices", ()):
                text.append(c.get("delta", {}).get("content") or "")
    return "".join(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([EMAIL, CARD]), st.lists(st.integers(1, 40), max_size=8), st.data())
def test_a_value_split_anywhere_across_chunks_is_redacted(
    value: str, sizes: list[int], data: st.DataObject
) -> None:
    text = f"write to {value} now, or to {value}."
    pieces, at = [], 0
    for size in [*sizes, len(text)]:
        pieces.append(text[at : at + size])
        at += size
    events = [
        {"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
        for p in pieces
        if p
    ]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=6))
    out = both(body + b"data: [DONE]\n\n", cuts, True, pii="redact")
    seen = _content(out)
    assert value not in seen and "[REDACTED:" in seen
    redacted = seen[9:].split()[0]
    assert seen == f"write to {redacted} now, or to {redacted}."
