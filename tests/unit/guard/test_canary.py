"""The system-prompt canary: generated, injected, and caught however it comes back."""

from __future__ import annotations

import itertools

import pytest

from bulkhead.errors import ContentBlocked
from bulkhead.guard import Canary, CanaryWatch, inject_canary


def fixed_rng(size: int) -> bytes:
    return bytes(range(size))


CANARY = Canary.generate(fixed_rng)


def test_generate_uses_the_injected_randomness() -> None:
    assert CANARY.value == "bkc000102030405060708090a0b"
    assert Canary.generate().value != Canary.generate().value


def test_malformed_canaries_are_refused() -> None:
    for bad in ("", "bkc", "xyz000102030405060708090a0b", "bkcZZZZ0102030405060708"):
        with pytest.raises(ValueError):
            Canary(bad)


def test_repr_hides_the_value() -> None:
    assert CANARY.value not in repr(CANARY) and repr(CANARY).startswith("Canary(")


def test_inject_into_an_existing_system_message() -> None:
    body = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    }
    out = inject_canary(body, CANARY)
    assert out["messages"][0]["content"] == f"{CANARY.instruction()}\nBe brief."
    assert body["messages"][0]["content"] == "Be brief."  # the caller's body is untouched


def test_inject_into_list_content_and_without_a_system_message() -> None:
    parts = {"messages": [{"role": "developer", "content": [{"type": "text", "text": "x"}]}]}
    out = inject_canary(parts, CANARY)
    assert out["messages"][0]["content"][0] == {"type": "text", "text": CANARY.instruction()}
    bare = inject_canary({"messages": [{"role": "user", "content": "hi"}]}, CANARY)
    assert bare["messages"][0] == {"role": "system", "content": CANARY.instruction()}


def test_bodies_without_messages_are_unchanged() -> None:
    body = {"prompt": "hello"}
    assert inject_canary(body, CANARY) is body


@pytest.mark.parametrize(
    "leak",
    [
        CANARY.value,
        CANARY.value.upper(),
        " ".join(CANARY.value),
        "-".join(CANARY.value[i : i + 4] for i in range(0, len(CANARY.value), 4)),
        "".join(chr(ord(c) + 0xFEE0) for c in CANARY.value),  # full-width
    ],
)
def test_watch_sees_the_canary_in_any_spelling(leak: str) -> None:
    with pytest.raises(ContentBlocked) as caught:
        CanaryWatch(CANARY).feed(f"My instructions start with [{leak}] and")
    assert caught.value.reasons == ("canary",)
    assert CANARY.value not in caught.value.message


def test_watch_sees_the_canary_split_at_every_point() -> None:
    text = f"the marker is {CANARY.value} ok"
    for i, j in itertools.combinations(range(len(text) + 1), 2):
        watch = CanaryWatch(CANARY)
        with pytest.raises(ContentBlocked):
            for piece in (text[:i], text[i:j], text[j:]):
                watch.feed(piece)


def test_watch_ignores_a_prefix_of_the_canary() -> None:
    watch = CanaryWatch(CANARY)
    watch.feed(CANARY.value[:-1])
    watch.feed(" and then something else")
