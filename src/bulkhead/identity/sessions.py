"""Sign-in session tokens `bks_<session id>_<secret>` and one-time recovery codes.

Like API keys, the secret carries 256 bits from the OS's CSPRNG and only its
SHA-256 is stored; the id in the prefix finds the record.  Recovery codes
carry 80 bits each, also stored as SHA-256 hashes and each usable once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from bulkhead.errors import Unauthenticated

PREFIX = "bks"
TTL_S = 3600
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_TOKEN_RE = re.compile(r"^bks_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$")
RECOVERY_CODES = 10


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A freshly issued session token; `token` is the only copy and is never stored."""

    session_id: str
    token: str = field(repr=False)
    secret_hash: bytes = field(repr=False)


def issue_session() -> IssuedSession:
    session_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
    token = f"{PREFIX}_{session_id}_{secrets.token_urlsafe(32)}"
    return IssuedSession(session_id, token, hash_token(token))


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_session(token: str) -> str:
    """Return the session id of a well-formed token, else raise `Unauthenticated`."""
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        raise Unauthenticated("Incorrect session token provided.")
    return match.group(1)


def verify_token(token: str, expected_hash: bytes) -> None:
    if not hmac.compare_digest(hash_token(token), expected_hash):
        raise Unauthenticated("Incorrect session token provided.")


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Codes like `abcd-efgh-ijkl-mnop` (16 base32 characters, 80 bits)."""
    codes = []
    for _ in range(count):
        raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def recovery_hash(code: str) -> str:
    normal = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(normal.encode()).hexdigest()


def use_recovery_code(code: str, hashes: Sequence[str]) -> list[str]:
    """Return `hashes` without the one `code` matches; raise `Unauthenticated` if none does."""
    wanted = recovery_hash(code)
    remaining = [h for h in hashes if not hmac.compare_digest(h, wanted)]
    if len(remaining) == len(hashes):
        raise Unauthenticated(
            "The recovery code is wrong or was used already.", code="invalid_totp"
        )
    return remaining
