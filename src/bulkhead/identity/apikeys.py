"""API keys: `bk_<key id>_<secret>`, shown once, stored as a SHA-256 hash.

The key id in the prefix lets the gateway find the record without a search
and lets operators name a key in logs without holding the secret.  The secret
carries 256 bits from the OS's CSPRNG, so a fast hash is enough: there is
nothing to brute-force, unlike a password (which would need Argon2id).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from bulkhead.errors import Unauthenticated

PREFIX = "bk"
_KEY_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_KEY_RE = re.compile(r"^bk_([a-z2-7]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly issued key; `secret` is the only copy and is never stored."""

    key_id: str
    secret: str = field(repr=False)
    secret_hash: bytes = field(repr=False)


def issue_key() -> IssuedKey:
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(12))
    token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return IssuedKey(key_id=key_id, secret=token, secret_hash=hash_secret(token))


def hash_secret(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_key(token: str) -> str:
    """Return the key id of a well-formed key, else raise `Unauthenticated`."""
    match = _KEY_RE.fullmatch(token)
    if match is None:
        raise Unauthenticated("Incorrect API key provided.")
    return match.group(1)


def verify_secret(token: str, expected_hash: bytes) -> None:
    """Raise `Unauthenticated` unless `token` hashes to `expected_hash` (constant time)."""
    if not hmac.compare_digest(hash_secret(token), expected_hash):
        raise Unauthenticated("Incorrect API key provided.")
