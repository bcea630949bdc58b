"""The console's session cookie, its CSRF token and the same-origin check.

A person signed in to the console (`bulkhead.console`) carries the sign-in
session token (`bks_…`, `identity.sessions`) in one cookie:

    __Host-bulkhead_session=<token>; Max-Age=<its lifetime>; Path=/; Secure; HttpOnly;
    SameSite=Strict

`__Host-` makes a browser refuse the cookie unless it is `Secure`, has
`Path=/` and no `Domain` (RFC 6265bis §4.1.3.2), so no sibling host can set or
shadow it.  Chromium treats http://127.0.0.1 and http://localhost as secure
contexts and keeps `Secure` cookies there.

The cookie is the browser's, not the page's: a forged cross-site request
carries it too (`SameSite=Strict` stops most, not a same-site sibling).  So a
state change authenticated by the cookie needs two more proofs, checked by
`gateway/csrf.py`:

- the CSRF token, `X-CSRF-Token`: HMAC-SHA256 keyed by the session token of
  a fixed label (`csrf_token`), so it is bound to the session, needs no
  storage, and only the console's own page can learn it (`GET
  /console/api/session`, which no other origin can read); compared in
  constant time (`check_csrf`);
- the request's own origin: `Sec-Fetch-Site: same-origin` where the browser
  sends it and an `Origin` equal to the gateway's (`same_origin`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field

from bulkhead.errors import PermissionDenied
from bulkhead.web.scope import Scope, header

COOKIE = "__Host-bulkhead_session"
# The OIDC sign-in's pre-auth cookie (`identity/oidc_login.py`): `SameSite=Lax`, because it
# must come back on the IdP's top-level redirect to the callback, which is cross-site.
PRE_AUTH_COOKIE = "__Host-bulkhead_oidc"
CSRF_HEADER = b"x-csrf-token"
_CSRF_LABEL = b"bulkhead/console-csrf/v1"
_COOKIE_BYTES = COOKIE.encode()
# Cookies hold at most a few KiB in every browser; a longer header is not ours to parse.
_MAX_COOKIE_HEADER = 8192
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class CookieSession:
    """A request authenticated by the session cookie; the token never shows in a repr."""

    token: str = field(repr=False)

    def csrf(self) -> str:
        return csrf_token(self.token)


def session_cookie(scope: Scope, name: bytes = _COOKIE_BYTES) -> str | None:
    """The session token (or the cookie `name`) in the request's `Cookie` header(s), if any."""
    for header_name, value in scope["headers"]:
        if header_name != b"cookie" or len(value) > _MAX_COOKIE_HEADER:
            continue
        for part in bytes(value).split(b";"):
            key, eq, token = part.strip().partition(b"=")
            if eq and key == name:
                return token.decode("latin-1")
    return None


def set_cookie(
    token: str, max_age: int, *, name: str = COOKIE, same_site: str = "Strict"
) -> tuple[bytes, bytes]:
    attributes = f"Path=/; Secure; HttpOnly; SameSite={same_site}"
    value = f"{name}={token}; Max-Age={max(max_age, 0)}; {attributes}"
    return b"set-cookie", value.encode("latin-1")


def pre_auth_cookie(scope: Scope) -> str | None:
    return session_cookie(scope, PRE_AUTH_COOKIE.encode())


def set_pre_auth_cookie(value: str, max_age: int) -> tuple[bytes, bytes]:
    return set_cookie(value, max_age, name=PRE_AUTH_COOKIE, same_site="Lax")


def clear_cookie() -> tuple[bytes, bytes]:
    return set_cookie("", 0)


def csrf_token(token: str) -> str:
    digest = hmac.new(token.encode("latin-1"), _CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _csrf_refused(detail: str) -> PermissionDenied:
    refused = PermissionDenied(
        "This request must come from the console itself, with its CSRF token.",
        code="csrf_failed",
    )
    refused.detail = detail
    return refused


def check_csrf(scope: Scope, session: CookieSession) -> None:
    """Raise `PermissionDenied` unless `X-CSRF-Token` is the session's token."""
    sent = header(scope, CSRF_HEADER)
    if sent is None:
        raise _csrf_refused("no csrf token")
    if not hmac.compare_digest(sent, session.csrf().encode()):
        raise _csrf_refused("wrong csrf token")


# What a Host header (or an origin after its scheme) may be: a name, an IPv4 address or a
# bracketed IPv6 one, and a port; nothing (`@`, `/`, `?`, `#`, `\`) that could make a URL
# built from it name another host.
HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?"
)


def own_origin(scope: Scope) -> str | None:
    host = header(scope, b"host")
    if host is None:
        return None
    return f"{scope.get('scheme', 'http')}://{host.decode('latin-1').lower()}"


def same_origin(scope: Scope) -> None:
    """Raise `PermissionDenied` unless the browser says the request comes from this origin.

    Browsers send `Origin` on every POST, PUT, PATCH and DELETE made by a page
    (same-origin fetches included) and `Sec-Fetch-Site` on every request; a
    request with neither did not come from a browser page, and a browser is
    what a cookie stands for.
    """
    site = header(scope, b"sec-fetch-site")
    if site is not None and site != b"same-origin":
        raise _csrf_refused(f"sec-fetch-site {site.decode('latin-1')[:32]}")
    origin = header(scope, b"origin")
    if origin is None and site is None:
        raise _csrf_refused("no origin")
    if origin is not None and origin.decode("latin-1").lower() != own_origin(scope):
        raise _csrf_refused("cross-origin")
