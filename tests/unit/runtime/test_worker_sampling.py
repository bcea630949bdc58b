"""The worker's `top_p` and `stop`: parsed like OpenAI's, applied by every local chat model.

Run on the random demo model (greedy output is fixed by its seed); the bundled
model goes through the same generation code (tests/integration/test_bundled_model.py).
"""

from __future__ import annotations

import pytest

from bulkhead.runtime.worker.backends import SamplingParams
from bulkhead.runtime.worker.demo_chat import DemoChatModel
from bulkhead.runtime.worker.errors import ApiError
from bulkhead.runtime.worker.validation import parse_chat_request

MESSAGES = [{"role": "user", "content": "Hello"}]
CHAT = [("user", "Hello")]


@pytest.fixture(scope="module")
def model() -> DemoChatModel:
    return DemoChatModel(seed=0)


def run(model: DemoChatModel, params: SamplingParams) -> tuple[list[str], str | None, int]:
    generation = model.start_chat(CHAT, params)
    pieces = []
    while (piece := generation.step()) is not None:
        pieces.append(piece)
    return pieces, generation.finish_reason, generation.completion_tokens


def test_top_p_and_stop_are_parsed() -> None:
    parsed = parse_chat_request({"messages": MESSAGES, "top_p": 0.5, "stop": ["a", "", "a", "b"]})
    assert parsed.sampling.top_p == 0.5 and parsed.sampling.stop == ("a", "b")
    assert parse_chat_request({"messages": MESSAGES, "stop": "x"}).sampling.stop == ("x",)
    default = parse_chat_request({"messages": MESSAGES}).sampling
    assert (default.top_p, default.stop) == (1.0, ())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("top_p", 1.5),
        ("top_p", -0.1),
        ("top_p", True),
        ("top_p", "0.5"),
        ("stop", 3),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("stop", [1]),
        ("stop", ["x" * 257]),
    ],
)
def test_bad_values_are_a_400_naming_the_parameter(field: str, value: object) -> None:
    with pytest.raises(ApiError) as caught:
        parse_chat_request({"messages": MESSAGES, field: value})
    assert caught.value.status == 400 and field in str(caught.value.body())


def test_a_stop_sequence_ends_the_text_before_it(model: DemoChatModel) -> None:
    pieces, reason, _ = run(model, SamplingParams(max_tokens=40, temperature=0.0, seed=None))
    full = "".join(pieces)
    assert reason == "length" and len(full) > 12, full
    stop = full[8:11]
    cut = full[: full.index(stop)]
    for stops in ((stop,), ("\x00never", stop)):
        params = SamplingParams(max_tokens=40, temperature=0.0, seed=None, stop=stops)
        pieces, reason, tokens = run(model, params)
        assert ("".join(pieces), reason) == (cut, "stop")
        assert 1 <= tokens < 40


def test_text_that_may_become_a_stop_sequence_is_held_back(model: DemoChatModel) -> None:
    pieces, _, _ = run(model, SamplingParams(max_tokens=40, temperature=0.0, seed=None))
    full = "".join(pieces)
    # A stop sequence that starts like the text but never completes: nothing is lost.
    stop = full[:3] + "\x00"
    params = SamplingParams(max_tokens=40, temperature=0.0, seed=None, stop=(stop,))
    held, reason, _ = run(model, params)
    assert "".join(held) == full and reason == "length"
    assert held[0] == ""  # the first token could still have begun the stop sequence


def test_a_tiny_top_p_is_greedy(model: DemoChatModel) -> None:
    greedy, _, _ = run(model, SamplingParams(max_tokens=20, temperature=0.0, seed=None))
    for seed in (1, 2, 3):
        params = SamplingParams(max_tokens=20, temperature=1.5, seed=seed, top_p=1e-9)
        assert run(model, params)[0] == greedy


def test_top_p_changes_what_sampling_may_pick(model: DemoChatModel) -> None:
    wide = {"".join(run(model, SamplingParams(20, 1.5, s))[0]) for s in range(6)}
    narrow = {"".join(run(model, SamplingParams(20, 1.5, s, top_p=0.05))[0]) for s in range(6)}
    assert len(narrow) < len(wide)
