"""Passwords: Argon2id (RFC 9106) hashes, verified in constant time by argon2-cffi.

Unlike an API key's random secret, a password is guessable, so its hash
must be slow and memory-hard.  `verify_dummy` spends the same effort when
there is no hash to check, so a missing account is not faster to refuse.
"""

from __future__ import annotations

import base64
import contextlib
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION

from bulkhead.errors import InvalidRequest, Unauthenticated

MIN_LENGTH = 12
MAX_LENGTH = 1024


class Passwords:
    """An Argon2id hasher; its cost is injectable so tests may run faster."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._dummy = dummy_hash(self._hasher)

    def hash(self, password: str) -> str:
        check_policy(password)
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> None:
        """Return if `password` matches `stored`; raise `Unauthenticated` otherwise."""
        try:
            self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise Unauthenticated("Incorrect password.", code="invalid_credentials") from None

    def verify_dummy(self, password: str) -> None:
        with contextlib.suppress(VerificationError):
            self._hasher.verify(self._dummy, password)

    def __repr__(self) -> str:
        return "Passwords(argon2id)"


def dummy_hash(hasher: PasswordHasher) -> str:
    """A well-formed hash with `hasher`'s parameters that no password is known to match.

    Verifying against it costs what verifying against a real hash costs (the
    password is hashed with its salt and parameters, then compared), so it needs
    no hash of its own: hashing one cost every start-up 0.4 s of CPU and 64 MiB.
    """

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii").rstrip("=")

    salt, digest = secrets.token_bytes(hasher.salt_len), secrets.token_bytes(hasher.hash_len)
    costs = f"m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
    return f"$argon2id$v={ARGON2_VERSION}${costs}${b64(salt)}${b64(digest)}"


def check_policy(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidRequest(
            f"A password must have {MIN_LENGTH} to {MAX_LENGTH} characters.", param="password"
        )
