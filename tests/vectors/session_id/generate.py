"""Generate the session-id vectors: ``python -m tests.vectors.session_id.generate``.

The keys are SHA-256 of fixed labels, every random byte comes from
`SeededRng` and the clock is fixed, so running this again rewrites an
identical file; `test_session_id_vectors.py` checks that it does.  See README.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bulkhead.identity.sessions import ACTIVATION, TTL_S, SessionKey, SessionKeys, issue_session
from tests.vectors.envelope.generate import SeededRng

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "bulkhead-session-id-v1.json"
CREATED = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
LIFETIME = timedelta(seconds=TTL_S)


def key_bytes(label: str) -> bytes:
    return hashlib.sha256(f"bulkhead session id test vector {label}".encode()).digest()


KEYS = SessionKeys(SessionKey(n + 1, at, key_bytes(f"key {n + 1}")) for n, at in enumerate(CREATED))
STRANGER = SessionKeys([SessionKey(1, CREATED[0], key_bytes("stranger"))])


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _case(name: str, keys: SessionKeys, issued: datetime, checked: datetime) -> dict[str, Any]:
    rng = SeededRng(f"session id {name}".encode())
    token = issue_session(keys, issued + LIFETIME, now=issued, rng=rng).token
    return {
        "name": name,
        "key_version": keys.signing(issued).version,
        "issued_at": _iso(issued),
        "expires_at": _iso(issued + LIFETIME),
        "checked_at": _iso(checked),
        "random_hex": rng.draws[0].hex(),
        "token": token,
    }


def _rewrite(token: str, change: Any) -> str:
    """The token with its id's 20 bytes changed by `change` and encoded again."""
    prefix, session_id, secret = token.split("_", 2)
    raw = bytearray(base64.b32decode(session_id.upper()))
    change(raw)
    return f"{prefix}_{base64.b32encode(bytes(raw)).decode().lower()}_{secret}"


def _flip(at: int) -> Any:
    def change(raw: bytearray) -> None:
        raw[at] ^= 0x01

    return change


def _invalid(one: dict[str, Any], old: dict[str, Any]) -> list[dict[str, Any]]:
    token, checked = one["token"], one["checked_at"]
    prefix, session_id, secret = token.split("_", 2)
    incorrect = {
        "flip-random": _rewrite(token, _flip(0)),
        "flip-expiry": _rewrite(token, _flip(11)),
        "flip-tag": _rewrite(token, _flip(19)),
        "truncated-id": f"{prefix}_{session_id[:-1]}_{secret}",
        "truncated-secret": token[:-1],
        "old-format-16-character-id": f"{prefix}_{session_id[:16]}_{secret}",
        "upper-case-id": f"{prefix}_{session_id.upper()}_{secret}",
        "trailing-garbage": token + "=",
        "wrong-key": _case("wrong-key", STRANGER, CREATED[1], CREATED[1])["token"],
    }
    out = [{"name": n, "token": t, "checked_at": checked, "code": "invalid_api_key"}
           for n, t in incorrect.items()]  # fmt: skip
    retired = _iso(CREATED[1] + ACTIVATION + LIFETIME)
    out.append({"name": "retired-key", "token": old["token"], "checked_at": retired,
                "code": "invalid_api_key"})  # fmt: skip
    out.append({"name": "expired", "token": token, "checked_at": one["expires_at"],
                "code": "session_expired"})  # fmt: skip
    return out


def build() -> dict[str, Any]:
    day = timedelta(days=1)
    overlap = CREATED[1] + timedelta(minutes=1)  # Version 2 exists but does not sign yet.
    cases = [
        _case("version-1", KEYS, CREATED[0] + day, CREATED[0] + day),
        _case("version-1-in-the-overlap", KEYS, overlap, overlap + ACTIVATION + LIFETIME / 2),
        _case("version-2", KEYS, CREATED[1] + day, CREATED[1] + day + LIFETIME / 2),
    ]
    return {
        "format": "bulkhead session id v1",
        "keys": [
            {"version": n + 1, "created_at": _iso(at), "key_hex": key_bytes(f"key {n + 1}").hex()}
            for n, at in enumerate(CREATED)
        ],
        "activation_s": int(ACTIVATION.total_seconds()),
        "lifetime_s": TTL_S,
        "valid": cases,
        "invalid": _invalid(cases[2], cases[1]),
    }


if __name__ == "__main__":
    VECTORS.write_text(json.dumps(build(), indent=2) + "\n")
