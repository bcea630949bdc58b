"""Session ids that prove themselves: signed with the platform's session key, refused unread."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bulkhead.errors import Unauthenticated, Unavailable
from bulkhead.identity.sessions import (
    ACTIVATION,
    TTL_S,
    SessionKey,
    SessionKeys,
    hash_token,
    issue_session,
    session_id_of,
    verify_token,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LIFETIME = timedelta(seconds=TTL_S)
ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def keys(*created: datetime) -> SessionKeys:
    return SessionKeys(SessionKey.generate(n + 1, at) for n, at in enumerate(created))


def token(held: SessionKeys, now: datetime = T0, lifetime: timedelta = LIFETIME) -> str:
    return issue_session(held, now + lifetime, now=now).token


def refused(held: SessionKeys, value: str, now: datetime = T0) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        session_id_of(value, held, now=now)
    return caught.value


def test_an_issued_token_names_its_id_and_expiry() -> None:
    held = keys(T0)
    issued = issue_session(held, T0 + LIFETIME, now=T0)
    prefix, session_id, secret = issued.token.split("_", 2)
    assert (prefix, len(session_id), len(secret)) == ("bks", 32, 43)
    assert set(session_id) <= set(ALPHABET)
    proven = session_id_of(issued.token, held, now=T0)
    assert proven.value == session_id == issued.session_id
    assert proven.expires_at == T0 + LIFETIME
    verify_token(issued.token, issued.secret_hash)
    assert issued.secret_hash == hash_token(issued.token)
    assert issued.token not in repr(issued)


def test_an_expiry_with_a_fraction_of_a_second_is_rounded_up() -> None:
    held = keys(T0)
    late = T0 + LIFETIME + timedelta(microseconds=1)
    proven = session_id_of(issue_session(held, late, now=T0).token, held, now=T0)
    assert proven.expires_at == T0 + LIFETIME + timedelta(seconds=1)


def test_every_changed_character_of_the_id_is_refused_as_any_incorrect_token() -> None:
    held = keys(T0)
    good = token(held)
    answers = set()
    for at in range(4, 4 + 32):
        other = ALPHABET[(ALPHABET.index(good[at]) + 1) % 32]
        answers.add(refused(held, good[:at] + other + good[at + 1 :]).message)
    assert answers == {"Incorrect session token provided."}
    assert refused(held, "bks_" + "a" * 32 + "_" + "b" * 43).code == "invalid_api_key"


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-1], id="secret-truncated"),
        pytest.param(lambda t: t[:20] + t[21:], id="id-truncated"),
        pytest.param(lambda t: t[:4] + t[4:20] + t[36:], id="old-format-16-character-id"),
        pytest.param(lambda t: t[:36], id="no-secret"),
        pytest.param(lambda t: t + "x", id="trailing-garbage"),
        pytest.param(lambda t: t[:4] + t[4:36].upper() + t[36:], id="id-upper-case"),
        pytest.param(lambda t: "bk_" + t[4:], id="api-key-prefix"),
        pytest.param(lambda t: t[:4] + t[20:36] + t[4:20] + t[36:], id="halves-swapped"),
        pytest.param(lambda t: "", id="empty"),
    ],
)
def test_malformed_tokens_are_refused(mangle: Callable[[str], str]) -> None:
    held = keys(T0)
    value = mangle(token(held))
    assert refused(held, value).message == "Incorrect session token provided."


def test_a_token_signed_with_another_key_is_refused() -> None:
    ours, theirs = keys(T0), keys(T0)
    assert refused(ours, token(theirs)).message == "Incorrect session token provided."


def test_an_expired_id_is_refused_as_an_ended_session() -> None:
    held = keys(T0)
    value = token(held, lifetime=timedelta(seconds=60))
    session_id_of(value, held, now=T0 + timedelta(seconds=59))
    assert refused(held, value, T0 + timedelta(seconds=60)).code == "session_expired"


def test_without_keys_nothing_is_signed_or_accepted() -> None:
    with pytest.raises(Unavailable):
        issue_session(SessionKeys(), T0 + LIFETIME, now=T0)
    assert refused(SessionKeys(), token(keys(T0))).code == "invalid_api_key"


def test_a_new_key_signs_after_its_activation_and_the_old_one_verifies_a_lifetime_more() -> None:
    rotated = T0 + timedelta(days=30)
    held = keys(T0, rotated)
    old, new = held.accepted(rotated)
    assert (old.version, new.version) == (1, 2)
    assert held.signing(rotated).version == 1  # Not every replica may hold version 2 yet.
    assert held.signing(rotated + ACTIVATION).version == 2
    last_old = token(held, rotated + ACTIVATION - timedelta(seconds=1))
    first_new = token(held, rotated + ACTIVATION)
    session_id_of(first_new, held, now=rotated + ACTIVATION)
    # Ids signed with the old key outlive the switch by one lifetime at most.
    end = rotated + ACTIVATION + LIFETIME
    session_id_of(last_old, held, now=end - timedelta(seconds=2))
    assert [k.version for k in held.accepted(end - timedelta(seconds=1))] == [1, 2]
    assert [k.version for k in held.accepted(end)] == [2]
    forged_late = issue_session(SessionKeys([old]), end + LIFETIME, now=T0).token
    assert refused(held, forged_late, end).code == "invalid_api_key"


def test_a_key_published_but_not_signing_yet_verifies_already() -> None:
    # Another replica whose clock runs ahead may sign with it first.
    held = keys(T0, T0 + timedelta(days=1))
    ahead = SessionKeys([held.accepted(T0)[1]])
    session_id_of(token(ahead, T0 + timedelta(days=1)), held, now=T0 + timedelta(days=1))


def test_keys_are_hard_to_leak() -> None:
    key = SessionKey.generate(1, T0)
    assert key.secret.hex() not in repr(key) and key.secret.hex() not in repr(SessionKeys([key]))
    for value in (key, SessionKeys([key])):
        with pytest.raises(TypeError):
            pickle.dumps(value)
    with pytest.raises(ValueError):
        SessionKey(1, T0, b"short")
