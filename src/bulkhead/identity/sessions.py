"""Sign-in session tokens `bks_<session id>_<secret>` and one-time recovery codes.

Like API keys, the secret carries 256 bits from the OS's CSPRNG and only the
token's SHA-256 is stored; the id finds the record.  Recovery codes carry 80
bits each, also stored as SHA-256 hashes and each usable once.

The session id proves itself, so a made-up token is refused before anything
is read.  It is 20 bytes in lowercase base32 (32 characters):

    random (8) | expiry (4, Unix seconds, big-endian, rounded up) | tag (8)

where tag = HMAC-SHA256(session key, "bulkhead/session-id/v1" NUL random ‖
expiry) cut to its first 8 bytes (64 bits: an online forger needs about
2^63 requests per hit).  A token whose tag no accepted key makes is refused
as any incorrect token is; one whose expiry has passed is refused as an
ended session.  Only a token this platform issued, still in its lifetime,
reaches the database.  Tokens of the earlier format (a 16-character id
without a tag) are no longer well-formed, so they were all refused once this
format shipped; they lasted an hour at most.

The session keys are the platform's (`SessionKeys`; kept by
`store.session_keys`).  A new key is published `ACTIVATION` before it signs
anything, so every replica has it before a token needs it, and the key
before it is accepted for `TTL_S` (one session lifetime) after that, so a
rotation signs no one out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from bulkhead.errors import Unauthenticated, Unavailable

PREFIX = "bks"
TTL_S = 3600
ACTIVATION = timedelta(minutes=5)
KEY_BYTES = 32
RANDOM_BYTES, EXPIRY_BYTES, TAG_BYTES = 8, 4, 8
_BODY_BYTES = RANDOM_BYTES + EXPIRY_BYTES
_LABEL = b"bulkhead/session-id/v1\x00"
_TOKEN_RE = re.compile(r"^bks_([a-z2-7]{32})_([A-Za-z0-9_-]{43})$")
RECOVERY_CODES = 10

Rng = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class SessionKey:
    """One version of the platform's session key; its bytes never show in a repr."""

    version: int
    created_at: datetime
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"a session key is {KEY_BYTES} bytes")

    @classmethod
    def generate(cls, version: int, created_at: datetime) -> SessionKey:
        return cls(version, created_at, secrets.token_bytes(KEY_BYTES))

    def tag(self, body: bytes) -> bytes:
        return hmac.new(self.secret, _LABEL + body, hashlib.sha256).digest()[:TAG_BYTES]

    def __reduce__(self) -> NoReturn:
        raise TypeError("session keys cannot be pickled")


class SessionKeys:
    """The platform's session keys: which one signs new ids and which ones verify, and when.

    A key signs from `ACTIVATION` after it was created (the oldest one held at
    once: before it there was none) until the next one signs; it verifies
    until `TTL_S` after that, when the last id it signed has expired.
    """

    def __init__(self, keys: Iterable[SessionKey] = ()):
        self._keys = tuple(sorted(keys, key=lambda k: k.version))

    def __repr__(self) -> str:
        return f"SessionKeys(versions={[k.version for k in self._keys]})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("session keys cannot be pickled")

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(k.version for k in self._keys)

    def newest(self) -> SessionKey | None:
        return self._keys[-1] if self._keys else None

    def _signs_from(self, index: int) -> datetime:
        created = self._keys[index].created_at
        return created if index == 0 else created + ACTIVATION

    def signing(self, now: datetime) -> SessionKey:
        """The key new ids are signed with; `Unavailable` while no key is held (fail closed)."""
        for index in range(len(self._keys) - 1, -1, -1):
            if self._signs_from(index) <= now:
                return self._keys[index]
        if self._keys:  # Only a clock that went backwards gets here.
            return self._keys[0]
        raise Unavailable("Signing in is unavailable right now; try again later.")

    def accepted(self, now: datetime) -> tuple[SessionKey, ...]:
        """The keys whose ids may still be alive at `now`."""
        last = timedelta(seconds=TTL_S)
        return tuple(
            key
            for index, key in enumerate(self._keys)
            if index + 1 == len(self._keys) or now < self._signs_from(index + 1) + last
        )


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A freshly issued session token; `token` is the only copy and is never stored."""

    session_id: str
    token: str = field(repr=False)
    secret_hash: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SessionId:
    """The id of a token this platform issued, and when that token expires at the latest."""

    value: str
    expires_at: datetime


def issue_session(
    keys: SessionKeys,
    expires_at: datetime,
    *,
    now: datetime | None = None,
    rng: Rng = secrets.token_bytes,
) -> IssuedSession:
    """A new token for a session ending at `expires_at`, its id signed with the signing key."""
    key = keys.signing(now or datetime.now(UTC))
    body = rng(RANDOM_BYTES) + math.ceil(expires_at.timestamp()).to_bytes(EXPIRY_BYTES, "big")
    session_id = base64.b32encode(body + key.tag(body)).decode().lower()
    token = f"{PREFIX}_{session_id}_{base64.urlsafe_b64encode(rng(32)).decode().rstrip('=')}"
    return IssuedSession(session_id, token, hash_token(token))


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def session_id_of(token: str, keys: SessionKeys, *, now: datetime | None = None) -> SessionId:
    """The id of a token this platform issued that has not expired, else `Unauthenticated`.

    Nothing is read: a token that is not well-formed, or whose id no accepted
    key signed, gets the answer every incorrect token gets.
    """
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        raise _incorrect()
    raw = base64.b32decode(match.group(1).upper())
    body, tag = raw[:_BODY_BYTES], raw[_BODY_BYTES:]
    at = now or datetime.now(UTC)
    if not _signed(body, tag, keys.accepted(at)):
        raise _incorrect()
    expires_at = datetime.fromtimestamp(int.from_bytes(body[RANDOM_BYTES:], "big"), UTC)
    if at >= expires_at:
        raise ended()
    return SessionId(match.group(1), expires_at)


def _signed(body: bytes, tag: bytes, keys: Sequence[SessionKey]) -> bool:
    # Every accepted key is compared, in constant time, so the time taken does not
    # tell which one (if any) matched.
    matches = [hmac.compare_digest(key.tag(body), tag) for key in keys]
    return any(matches)


def verify_token(token: str, expected_hash: bytes) -> None:
    if not hmac.compare_digest(hash_token(token), expected_hash):
        raise _incorrect()


def _incorrect() -> Unauthenticated:
    return Unauthenticated("Incorrect session token provided.")


def ended() -> Unauthenticated:
    """The answer to a session that was revoked or is over."""
    return Unauthenticated("This session has ended; sign in again.", code="session_expired")


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
