"""Enrolment secrets: `bke_<secret>`, shown once to whoever creates a platform principal.

A new platform principal has no credential.  Its creator gets one enrolment
secret, hands it to the person, and that person sets their own password and
enrols their authenticator with it (`/auth/v1/enrol`).  The secret is a
credential in its own right until then: 256 bits from the OS's CSPRNG, kept
only as its SHA-256 hash (nothing to brute-force, as for API keys), compared
in constant time, good for one use before it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

PREFIX = "bke"
_SECRET_RE = re.compile(r"^bke_[A-Za-z0-9_-]{43}$")
MAX_LENGTH = 128
"""What a request may carry in its place: longer is refused before any hashing."""


@dataclass(frozen=True, slots=True)
class IssuedEnrolment:
    """A fresh enrolment secret; `secret` is the only copy and is never stored."""

    secret: str = field(repr=False)
    secret_hash: bytes = field(repr=False)


def issue_enrolment() -> IssuedEnrolment:
    secret = f"{PREFIX}_{secrets.token_urlsafe(32)}"
    return IssuedEnrolment(secret=secret, secret_hash=hash_enrolment(secret))


def hash_enrolment(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def matches(secret: str, expected_hash: bytes) -> bool:
    """Whether `secret` is the one that hashes to `expected_hash` (constant time).

    A malformed secret is compared all the same, so its shape does not answer
    faster than a wrong one of the right shape.
    """
    well_formed = _SECRET_RE.fullmatch(secret) is not None
    same = hmac.compare_digest(hash_enrolment(secret), expected_hash)
    return well_formed and same
