from __future__ import annotations

import copy
import pickle

import pytest

from bulkhead.crypto import EXPORT_KEY_MATERIAL, DataKey, Kek

MATERIAL = bytes(range(32))


@pytest.mark.parametrize("cls", [DataKey, Kek])
def test_repr_shows_only_the_key_id(cls: type[DataKey] | type[Kek]) -> None:
    key = cls(MATERIAL)
    for text in (repr(key), str(key), f"{key}", f"{key!r}"):
        assert MATERIAL.hex() not in text and repr(MATERIAL) not in text
        assert key.key_id in text


@pytest.mark.parametrize("cls", [DataKey, Kek])
def test_pickle_and_copy_are_refused(cls: type[DataKey] | type[Kek]) -> None:
    key = cls(MATERIAL)
    for attempt in (lambda: pickle.dumps(key), lambda: copy.copy(key), lambda: copy.deepcopy(key)):
        with pytest.raises(TypeError):
            attempt()


def test_reveal_needs_the_capability() -> None:
    key = DataKey(MATERIAL)
    assert key.reveal(EXPORT_KEY_MATERIAL) == MATERIAL
    with pytest.raises(PermissionError):
        key.reveal(object())  # type: ignore[arg-type]


def test_vars_shows_nothing() -> None:
    # Python cannot truly hide an attribute; slots keep it out of vars() and logs.
    with pytest.raises(TypeError):
        vars(DataKey(MATERIAL))


def test_generate_uses_the_injected_rng() -> None:
    assert DataKey.generate(lambda n: b"\x07" * n).reveal(EXPORT_KEY_MATERIAL) == b"\x07" * 32
    assert DataKey.generate().key_id != DataKey.generate().key_id


def test_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError):
        DataKey(b"short")
