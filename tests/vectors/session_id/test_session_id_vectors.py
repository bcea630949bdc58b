"""Session-id vectors: verified through bulkhead and recomputed by a second implementation.

`reference_id` is written here from the format in README.md with the standard
library alone; it shares no code with `bulkhead.identity.sessions`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime
from typing import Any

import pytest

from bulkhead.errors import Unauthenticated
from bulkhead.identity.sessions import ACTIVATION, TTL_S, SessionKey, SessionKeys, session_id_of
from tests.vectors.session_id import generate

VECTORS: dict[str, Any] = json.loads(generate.VECTORS.read_text())
TOKEN = re.compile(r"bks_([a-z2-7]{32})_([A-Za-z0-9_-]{43})")


def keys() -> SessionKeys:
    return SessionKeys(
        SessionKey(
            k["version"], datetime.fromisoformat(k["created_at"]), bytes.fromhex(k["key_hex"])
        )
        for k in VECTORS["keys"]
    )


def reference_id(key: bytes, random: bytes, expires_at: datetime) -> str:
    body = random + int(expires_at.timestamp()).to_bytes(4, "big")
    tag = hmac.new(key, b"bulkhead/session-id/v1\x00" + body, hashlib.sha256).digest()[:8]
    return base64.b32encode(body + tag).decode().lower()


def key_of(version: int) -> bytes:
    return bytes.fromhex(next(k["key_hex"] for k in VECTORS["keys"] if k["version"] == version))


def test_the_timings_are_the_ones_pinned() -> None:
    assert VECTORS["activation_s"] == ACTIVATION.total_seconds()
    assert VECTORS["lifetime_s"] == TTL_S


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_tokens_verify_and_match_the_reference(case: dict[str, Any]) -> None:
    match = TOKEN.fullmatch(case["token"])
    assert match is not None
    expires_at = datetime.fromisoformat(case["expires_at"])
    random = bytes.fromhex(case["random_hex"])
    assert match.group(1) == reference_id(key_of(case["key_version"]), random, expires_at)
    proven = session_id_of(case["token"], keys(), now=datetime.fromisoformat(case["checked_at"]))
    assert proven.value == match.group(1) and proven.expires_at == expires_at


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_tokens_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(Unauthenticated) as refused:
        session_id_of(case["token"], keys(), now=datetime.fromisoformat(case["checked_at"]))
    assert refused.value.code == case["code"]


# Well-formed ids with a wrong tag, or one whose key no longer verifies.
TAGGED = [
    c for c in VECTORS["invalid"] if TOKEN.fullmatch(c["token"]) and c["code"] != "session_expired"
]


@pytest.mark.parametrize("case", TAGGED, ids=lambda c: c["name"])
def test_the_reference_makes_no_invalid_id(case: dict[str, Any]) -> None:
    session_id = case["token"][4:36]
    raw = base64.b32decode(session_id.upper())
    expires_at = datetime.fromtimestamp(int.from_bytes(raw[8:12], "big")).astimezone()
    made = {reference_id(key_of(k["version"]), raw[:8], expires_at) for k in VECTORS["keys"]}
    # The retired key's tag is right: only the time refuses it.
    assert (session_id in made) == (case["name"] == "retired-key")


def test_the_tagged_invalid_cases_are_the_ones_named() -> None:
    names = {c["name"] for c in TAGGED}
    assert names == {"flip-random", "flip-expiry", "flip-tag", "wrong-key", "retired-key"}


def test_generator_reproduces_files() -> None:
    assert json.loads(json.dumps(generate.build())) == VECTORS
