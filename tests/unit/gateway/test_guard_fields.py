"""The output guard over every text a choice carries: tool calls, function names, logprobs.

Whole answers and streams alike; a value split across tool-call argument
deltas or logprob tokens, at every cut, is still redacted.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bulkhead.errors import ContentBlocked
from bulkhead.gateway.guard_fields import ChoiceFilter
from tests.unit.gateway.test_guard_out import (
    CANARY,
    Run,
    chunk,
    events,
    guarded,
    sse,
)

CARD = "4111 1111 1111 1111"
KEY = "sk-proj-" + "Ab1" * 12
ARGS = '{"to": "billing", "card": "' + CARD + '", "note": "urgent"}'


def tool_message(name: str, arguments: str) -> dict[str, Any]:
    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def whole(run: Run, choice: dict[str, Any]) -> dict[str, Any]:
    sent = run.whole({"choices": [choice]})
    data: dict[str, Any] = orjson.loads(sent[1]["body"])["choices"][0]
    return data


def test_tool_call_arguments_and_names_are_filtered_in_a_whole_answer() -> None:
    run = Run(guarded(pii="redact"))
    choice = {"index": 0, "message": tool_message(KEY, ARGS), "finish_reason": "stop"}
    out = whole(run, choice)["message"]["tool_calls"][0]
    assert out["function"]["name"] == "[REDACTED:API_KEY]"
    arguments = orjson.loads(out["function"]["arguments"])  # still JSON
    assert arguments == {"to": "billing", "card": "[REDACTED:CARD]", "note": "urgent"}
    assert out["id"] == "c1"  # ids are not text


def test_the_legacy_function_call_and_refusal_are_filtered() -> None:
    run = Run(guarded(pii="redact"))
    message = {"role": "assistant", "refusal": f"not {CARD}"}
    message["function_call"] = {"name": "pay", "arguments": ARGS}
    out = whole(run, {"index": 0, "message": message})["message"]
    assert CARD not in orjson.dumps(out).decode()
    assert out["refusal"] == "not [REDACTED:CARD]"


def _logprob(token: str, alternatives: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    top = [{"token": a, "logprob": -2.0, "bytes": list(a.encode())} for a in alternatives]
    return {"token": token, "logprob": -0.1, "bytes": list(token.encode()), "top_logprobs": top}


def test_logprob_tokens_are_filtered_like_the_content() -> None:
    tokens = ["My", " card", " is", " 4111", " 1111", " 1111", " 1111", ".", " Key", f" {KEY}"]
    content = "".join(tokens)
    entries = [_logprob(t, [t.upper(), KEY]) for t in tokens]
    run = Run(guarded(pii="redact"))
    choice = {"index": 0, "message": {"role": "assistant", "content": content}}
    out = whole(run, choice | {"logprobs": {"content": entries}})
    said = out["message"]["content"]
    assert said == "My card is [REDACTED:CARD]. Key [REDACTED:API_KEY]"
    got = out["logprobs"]["content"]
    assert "".join(e["token"] for e in got) == said
    assert all(bytes(e["bytes"]).decode() == e["token"] for e in got)
    assert KEY not in orjson.dumps(got).decode() and "4111" not in orjson.dumps(got).decode()
    # An unchanged token keeps its alternatives (filtered); a changed one has none.
    assert got[0]["top_logprobs"][0]["token"] == "MY"
    assert got[0]["top_logprobs"][1]["token"] == "[REDACTED:API_KEY]"
    assert all(e["top_logprobs"] == [] for e, t in zip(got, tokens, strict=True) if "1" in t)


def test_completion_logprob_tokens_are_filtered() -> None:
    run = Run(guarded(pii="redact"), path="/v1/completions")
    tokens = ["card", " 4111", " 1111", " 1111", " 1111", " ok"]
    logprobs = {"tokens": list(tokens), "token_logprobs": [-0.1] * 6}
    logprobs["top_logprobs"] = [{t: -0.1} for t in tokens]
    sent = run.whole({"choices": [{"index": 0, "text": "".join(tokens), "logprobs": logprobs}]})
    got = orjson.loads(sent[1]["body"])["choices"][0]["logprobs"]
    assert "".join(got["tokens"]) == "card [REDACTED:CARD] ok"
    assert "4111" not in orjson.dumps(got).decode()


def tool_chunk(index: int, arguments: str, name: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    event = chunk(0, None)
    event["choices"][0]["delta"] = {"tool_calls": [{"index": index, "function": function}]}
    return event


def streamed_arguments(evts: list[Any], index: int = 0) -> str:
    out = []
    for e in evts:
        for c in e["choices"] if isinstance(e, dict) else ():
            for call in c.get("delta", {}).get("tool_calls") or ():
                if call["index"] == index:
                    out.append(call["function"].get("arguments", ""))
    return "".join(out)


@pytest.mark.parametrize("cut", range(1, len(ARGS)))
def test_a_card_split_across_argument_deltas_is_still_redacted(cut: int) -> None:
    run = Run(guarded(pii="redact"))
    body = sse(
        tool_chunk(0, "", name="pay"),
        tool_chunk(0, ARGS[:cut]),
        tool_chunk(0, ARGS[cut:]),
        tool_chunk(1, '{"n": 1}', name="log"),
        chunk(0, None, "tool_calls"),
    )
    evts = events(run.stream([body, b"data: [DONE]\n\n"]))
    args = streamed_arguments(evts)
    assert orjson.loads(args) == {"to": "billing", "card": "[REDACTED:CARD]", "note": "urgent"}
    assert streamed_arguments(evts, 1) == '{"n": 1}'
    assert "4111" not in orjson.dumps(evts).decode()
    assert evts[-2]["choices"][0]["finish_reason"] == "tool_calls" and evts[-1] == "[DONE]"


def test_a_streamed_function_name_is_filtered() -> None:
    run = Run(guarded())
    body = sse(tool_chunk(0, "{}", name=KEY), chunk(0, None, "tool_calls"))
    evts = events(run.stream([body, b"data: [DONE]\n\n"]))
    names = [
        call["function"].get("name")
        for e in evts[:-1]
        for c in e["choices"]
        for call in c.get("delta", {}).get("tool_calls") or ()
    ]
    assert "".join(n for n in names if n) == "[REDACTED:API_KEY]"
    assert KEY not in orjson.dumps(evts).decode()


def logprob_chunk(token: str) -> dict[str, Any]:
    event = chunk(0, token)
    event["choices"][0]["logprobs"] = {"content": [_logprob(token, ["x"])]}
    return event


@pytest.mark.parametrize("split", [1, 2, 3, 5])
def test_a_value_split_across_streamed_logprob_tokens_is_redacted(split: int) -> None:
    text = f"Pay with {CARD} today."
    tokens = [text[i : i + split] for i in range(0, len(text), split)]
    run = Run(guarded(pii="redact"))
    body = sse(*(logprob_chunk(t) for t in tokens), chunk(0, None, "stop"))
    evts = events(run.stream([body, b"data: [DONE]\n\n"]))
    entries = [
        entry
        for e in evts[:-1]
        for c in e["choices"]
        for entry in (c.get("logprobs") or {}).get("content") or ()
    ]
    assert "".join(e["token"] for e in entries) == "Pay with [REDACTED:CARD] today."
    assert "4111" not in orjson.dumps(evts).decode()
    assert all(bytes(e["bytes"]).decode() == e["token"] for e in entries)


def test_a_canary_in_tool_arguments_stops_the_answer() -> None:
    run = Run(guarded(canary=True))
    choice = {"index": 0, "message": tool_message("f", f'{{"x": "{CANARY.value}"}}')}
    with pytest.raises(ContentBlocked):
        run.whole({"choices": [choice]})


def test_a_choice_filter_that_was_never_fed_holds_nothing() -> None:
    stream = ChoiceFilter(lambda: guarded().guard.output_filter(), chat=True)
    assert stream.finish() == {}
