"""API keys: the `bk_<key id>_<secret>` format, parsing, hash-based verification, no leaks."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkhead.errors import Unauthenticated
from bulkhead.identity import IssuedKey, hash_secret, issue_key, parse_key, verify_secret

KEY_FORMAT = re.compile(r"bk_([a-z2-7]{12})_([A-Za-z0-9_-]{43})")
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
KEY = issue_key()


def test_issued_key_has_the_documented_format() -> None:
    for _ in range(50):
        issued = issue_key()
        match = KEY_FORMAT.fullmatch(issued.secret)
        assert match is not None, issued.key_id
        assert match.group(1) == issued.key_id


def test_key_id_is_readable_from_the_prefix() -> None:
    assert KEY.secret.startswith(f"bk_{KEY.key_id}_")
    assert parse_key(KEY.secret) == KEY.key_id


def test_issued_keys_are_distinct() -> None:
    keys = [issue_key() for _ in range(200)]
    assert len({k.key_id for k in keys}) == len({k.secret for k in keys}) == 200


def test_only_the_hash_of_the_whole_token_is_kept() -> None:
    assert KEY.secret_hash == hashlib.sha256(KEY.secret.encode()).digest()
    assert KEY.secret_hash == hash_secret(KEY.secret)
    assert KEY.secret.encode() not in KEY.secret_hash


def _malformed() -> list[object]:
    token, key_id, secret = KEY.secret, KEY.key_id, KEY.secret.split("_", 2)[2]
    cases = {
        "empty": "",
        "prefix-only": "bk_",
        "key-id-only": f"bk_{key_id}",
        "key-id-and-separator": f"bk_{key_id}_",
        "wrong-prefix": f"sk_{key_id}_{secret}",
        "upper-prefix": f"BK_{key_id}_{secret}",
        "upper-key-id": f"bk_{key_id.upper()}_{secret}",
        "key-id-not-base32": f"bk_{'0' * 12}_{secret}",
        "key-id-short": f"bk_{key_id[:-1]}_{secret}",
        "key-id-long": f"bk_{key_id}a_{secret}",
        "secret-short": token[:-1],
        "secret-long": token + "A",
        "secret-standard-base64": f"bk_{key_id}_{secret[:-1]}+",
        "secret-padded": f"bk_{key_id}_{secret[:-1]}=",
        "separator-dash": f"bk-{key_id}-{secret}",
        "swapped-parts": f"bk_{secret}_{key_id}",
        "bearer-included": f"Bearer {token}",
        "leading-space": f" {token}",
        "trailing-space": f"{token} ",
        "trailing-nul": f"{token}\x00",
        "doubled": token + token,
    }
    params: list[object] = [pytest.param(value, id=name) for name, value in cases.items()]
    params.append(
        pytest.param(
            f"{token}\n",
            id="trailing-newline",
        )
    )
    return params


@pytest.mark.parametrize("token", _malformed())
def test_parse_rejects_malformed_keys(token: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        parse_key(token)
    assert caught.value.message == "Incorrect API key provided."


def test_verify_accepts_the_issued_token() -> None:
    verify_secret(KEY.secret, KEY.secret_hash)


def test_verify_compares_hashes_not_plaintext() -> None:
    with pytest.raises(Unauthenticated):
        verify_secret(KEY.secret, KEY.secret.encode())


def test_verify_rejects_another_keys_hash() -> None:
    with pytest.raises(Unauthenticated):
        verify_secret(KEY.secret, issue_key().secret_hash)


@given(position=st.integers(0, len(KEY.secret) - 1), replacement=st.sampled_from(URLSAFE + BASE32))
def test_verify_rejects_any_one_character_change(position: int, replacement: str) -> None:
    original = KEY.secret
    changed = original[:position] + replacement + original[position + 1 :]
    if changed == original:
        return
    with pytest.raises(Unauthenticated):
        verify_secret(changed, KEY.secret_hash)


@given(position=st.integers(0, len(KEY.secret) - 1))
def test_verify_rejects_any_one_character_deletion(position: int) -> None:
    with pytest.raises(Unauthenticated):
        verify_secret(KEY.secret[:position] + KEY.secret[position + 1 :], KEY.secret_hash)


@given(position=st.integers(0, len(KEY.secret)), extra=st.sampled_from(URLSAFE))
def test_verify_rejects_any_one_character_insertion(position: int, extra: str) -> None:
    with pytest.raises(Unauthenticated):
        verify_secret(KEY.secret[:position] + extra + KEY.secret[position:], KEY.secret_hash)


def test_issued_key_repr_never_contains_the_secret() -> None:
    secret_part = KEY.secret.split("_", 2)[2]
    for text in (repr(KEY), str(KEY), f"{KEY}", repr([KEY]), repr({"k": KEY})):
        assert secret_part not in text
        assert KEY.secret_hash.hex() not in text
        assert KEY.key_id in text


def test_issued_key_is_immutable() -> None:
    with pytest.raises(AttributeError):
        KEY.secret = "bk_x"  # type: ignore[misc]
    assert isinstance(KEY, IssuedKey)
