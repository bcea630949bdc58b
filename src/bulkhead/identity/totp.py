"""Time-based one-time passwords (RFC 6238) over HOTP (RFC 4226).

SHA-1, 30-second steps and 6 digits by default: what authenticator apps
implement.  A code is accepted for the current step and one step either
side (clock drift); the caller stores the step that was used and passes it
back, so the same code (or an older one) is never accepted twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

from bulkhead.errors import Unauthenticated

STEP_S = 30
DIGITS = 6
_DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def new_secret() -> bytes:
    """160 bits, the key length RFC 4226 §4 recommends for HMAC-SHA-1."""
    return secrets.token_bytes(20)


def hotp(secret: bytes, counter: int, *, digits: int = DIGITS, algorithm: str = "SHA1") -> str:
    """RFC 4226 §5.3: HMAC, dynamic truncation, modulo 10^digits."""
    mac = hmac.new(secret, struct.pack(">Q", counter), _DIGESTS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def step_at(unix_time: float, step_s: int = STEP_S) -> int:
    """RFC 6238 §4.2: T = floor((now - T0) / X) with T0 = 0."""
    return int(unix_time // step_s)


def totp(secret: bytes, unix_time: float, *, digits: int = DIGITS, algorithm: str = "SHA1") -> str:
    return hotp(secret, step_at(unix_time), digits=digits, algorithm=algorithm)


def verify(
    secret: bytes, code: str, *, last_step: int | None, now: float | None = None, window: int = 1
) -> int:
    """Return the step `code` belongs to; raise `Unauthenticated` if none, or if replayed.

    A step at or before `last_step` (the last one accepted) is refused: one code, one use.
    """
    current = step_at(time.time() if now is None else now)
    candidate = code.strip().encode()
    for step in range(current - window, current + window + 1):
        if hmac.compare_digest(hotp(secret, step).encode(), candidate):
            if last_step is not None and step <= last_step:
                break
            return step
    raise Unauthenticated("The one-time code is wrong or was used already.", code="invalid_totp")


def otpauth_uri(secret: bytes, *, account: str, issuer: str = "Bulkhead") -> str:
    """The Key Uri Format that authenticator apps read from a QR code."""
    label = quote(f"{issuer}:{account}")
    query = urlencode(
        {
            "secret": base64.b32encode(secret).decode().rstrip("="),
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_S,
        }
    )
    return f"otpauth://totp/{label}?{query}"
