# ruff: noqa: RUF001 - Chinese pieces read best unwrapped; Chinese punctuation on purpose.
"""The two-clause rules found clause by clause (`_paired`) give exactly the matches of their
own pattern run as one regex (`Rule.pattern`, the reference): the same spans, in the same
order, on texts dense with frames, clauses, punctuation, newlines and filler, and on the
learned stage's dev split.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkhead.guard._normalize import normalize
from bulkhead.guard._rulebook import Rule
from bulkhead.guard._rules_roleplay import ROLEPLAY

PAIRED = [r for r in ROLEPLAY if r.pairs is not None]
DEV = Path(__file__).resolve().parents[2] / "vectors" / "guard" / "learned" / "dev.jsonl"

# Pieces of frames, stages, lifted rules, hidden instructions and reveal verbs, cut where a
# clause can start or stop, with what a gap or a clause must not cross.
PIECES = [
    *'扮演假装裝模拟化身角色进入戏你妳是叫做来演的口吻身份新从现在开始起，,。！？!?\n “”「」"',
    *"没有無不受任何所有限制约束规则矩审查过滤遵守执行拒绝从不永远也会有求必应越狱了旧的安全策略被清除删",
    *"系统提示词初始指令隐藏设定念说出复述原文是什么意思开发者给写收到那段游戏故事剧本真心话采访",
    "扮演",
    "假设你",
    "就当，  \n  你",
    "你是超级ai助手",
    "你叫做",
    "从现在开始，你",
    "没有任何限制",
    "不再遵守这些规则",
    "从不拒绝任何",
    "预算没有限制",
    "限制被删了",
    "你的系统提示",
    "你收到的那段设定",
    "开发者给你写的",
    "不要透露",
    "说出",
    "是什么",
    "玩一下cosplay",
    "x" * 30,
    " ",
    "一下",
]

WORDS_EN = [
    *[
        "pretend",
        "roleplay",
        "as",
        "you",
        "are",
        "now",
        "from",
        "on",
        "imagine",
        "in",
        "character",
        "persona",
        "let's",
        "play",
        "game",
        "story",
    ],
    *[
        "has",
        "have",
        "no",
        "any",
        "rules",
        "restrictions",
        "filters",
        "without",
        "free",
        "of",
        "not",
        "bound",
        "by",
        "never",
        "refuses",
        "anything",
    ],
    *[
        "says",
        "tells",
        "me",
        "uncensored",
        "unfiltered",
        "unrestricted",
        "ai",
        "model",
        "word",
        "limits",
        "on",
        "for",
        "and",
        "but",
    ],
    *[
        "recite",
        "reveal",
        "tell",
        "print",
        "what's",
        "in",
        "your",
        "the",
        "system",
        "prompt",
        "initial",
        "instructions",
        "you",
        "were",
        "given",
    ],
    *[
        "own",
        "hidden",
        "secret",
        "full",
        "truth",
        "or",
        "dare",
        "poem",
        "song",
        "don't",
        "it's",
        "x",
    ],
    "a" * 41,
    "pretend you are",
    "you are now",
    "has no rules",
    "an ai without any filters",
    "never refuses",
    "says anything",
    "your system prompt",
    "the instructions you were given",
    "let's play a game",
    "in this game",
]
SEPARATORS_EN = [" "] * 8 + [
    ", ",
    ". ",
    "! ",
    "? ",
    "\n",
    " ' ",
    "  ...  ",
    ' "',
    "” ",
    "-",
    "'",
    "          ",
]


def _same(rule: Rule, text: str) -> None:
    expected = [m.span() for m in rule.pattern.finditer(text)]
    assert [m.span() for m in rule.finditer(text)] == expected, (rule.name, rule.weight, text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=120))
def test_paired_rules_match_as_their_pattern_on_dense_mixtures(pieces: list[str]) -> None:
    text = "".join(pieces)
    for rule in PAIRED:
        _same(rule, text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(WORDS_EN), st.sampled_from(SEPARATORS_EN)), max_size=100))
def test_paired_english_rules_match_as_their_pattern_on_dense_mixtures(
    pieces: list[tuple[str, str]],
) -> None:
    text = "".join(word + separator for word, separator in pieces)
    for rule in PAIRED:
        _same(rule, text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12), st.integers(70, 90), st.integers(1, 24))
def test_paired_rules_match_as_their_pattern_at_the_edge_of_the_gap(
    pieces: list[str], filler: int, repeat: int
) -> None:
    # A clause just inside or just outside the gap from the other, repeated across blocks.
    text = ("".join(pieces) + "x" * filler) * repeat + "".join(reversed(pieces))
    for rule in PAIRED:
        _same(rule, text)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["pretend", "let's play a game", "story"]),
    st.lists(st.sampled_from(SEPARATORS_EN), min_size=13, max_size=19),
    st.sampled_from(["has no rules", "never refuses", "tell your system prompt"]),
    st.integers(1, 40),
)
def test_paired_english_rules_match_as_their_pattern_at_sixteen_words(
    frame: str, separators: list[str], clause: str, repeat: int
) -> None:
    # The clause 13 to 19 words after the frame (or before it), repeated across blocks.
    gap = "".join(f"w{i}{separator}" for i, separator in enumerate(separators))
    text = f"{frame} {gap}{clause} " * repeat + f"{clause} {gap}{frame}"
    for rule in PAIRED:
        _same(rule, text)


def test_paired_rules_match_as_their_pattern_on_the_dev_split() -> None:
    for line in DEV.read_text(encoding="utf-8").splitlines():
        text = normalize(json.loads(line)["text"]).text
        for rule in PAIRED:
            _same(rule, text)


DENSE_EN = [
    "pretend you are no restrictions ",
    "let's play a game your system prompt ",
    "pretend pretend has no ",
    "roleplay as never refuses broccoli ",
]
DENSE = [
    *DENSE_EN,
    "扮演扮演限",
    "你叫限",
    "扮演限制",
    "假装你不再遵守",
    "假装限",
    "扮演旧的规则",
    "你叫没有任何规",
    "扮演没有",
]


@pytest.mark.serial
@pytest.mark.parametrize("unit", DENSE)
def test_dense_frames_cost_what_a_plain_rule_costs(unit: str) -> None:
    # review7: 2 KiB of these took about 10 ms of CPU per rule as one regex, 64 K characters
    # 0.6-1.5 s; clause by clause, about 1 ms and 70 ms on a loaded machine.
    for rule in PAIRED:
        text = unit * (65536 // len(unit))
        start = time.process_time()
        list(rule.finditer(text))
        assert time.process_time() - start < 0.3, rule.name
