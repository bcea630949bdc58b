"""The console's session cookie, its CSRF token and the same-origin check (`web/cookies.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from bulkhead.errors import PermissionDenied
from bulkhead.web.cookies import (
    COOKIE,
    CookieSession,
    check_csrf,
    clear_cookie,
    csrf_token,
    same_origin,
    session_cookie,
    set_cookie,
)

TOKEN = "bks_" + "a" * 32 + "_" + "b" * 43


def scope(*headers: tuple[str, str], scheme: str = "http") -> dict[str, Any]:
    sent = [(b"host", b"console.test:8443")]
    sent += [(k.encode(), v.encode()) for k, v in headers]
    return {"type": "http", "scheme": scheme, "headers": sent}


@pytest.mark.parametrize(
    ("header", "found"),
    [
        (f"{COOKIE}={TOKEN}", TOKEN),
        (f"theme=dark; {COOKIE}={TOKEN}; other=1", TOKEN),
        (f"theme=dark;{COOKIE}={TOKEN}", TOKEN),
        ("theme=dark", None),
        (f"{COOKIE}X={TOKEN}", None),
        (f"x{COOKIE}={TOKEN}", None),
        (f"{COOKIE}", None),
        (f"{COOKIE}={TOKEN}; " + "p" * 9000, None),  # over the bound: not parsed at all
    ],
)
def test_the_session_cookie_is_found_by_its_exact_name(header: str, found: str | None) -> None:
    assert session_cookie(scope(("cookie", header))) == found


def test_no_cookie_header_is_no_session() -> None:
    assert session_cookie(scope()) is None


def test_the_cookie_is_strict() -> None:
    name, value = set_cookie(TOKEN, 3600)
    assert name == b"set-cookie"
    assert value.decode() == (
        f"{COOKIE}={TOKEN}; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Strict"
    )
    assert COOKIE.startswith("__Host-")
    assert clear_cookie()[1].decode().startswith(f"{COOKIE}=; Max-Age=0; Path=/; Secure")
    assert b"Max-Age=0;" in set_cookie(TOKEN, -5)[1]


def test_the_csrf_token_is_bound_to_its_session() -> None:
    one, other = csrf_token(TOKEN), csrf_token(TOKEN[:-1] + "c")
    assert one == csrf_token(TOKEN) and one != other
    assert len(one) == 43 and TOKEN not in one
    assert TOKEN not in repr(CookieSession(TOKEN))


@pytest.mark.parametrize(
    ("sent", "detail"),
    [
        (None, "no csrf token"),
        ("", "wrong csrf token"),
        ("x" * 43, "wrong csrf token"),
        (csrf_token(TOKEN) + "x", "wrong csrf token"),
        (csrf_token(TOKEN + "x"), "wrong csrf token"),
    ],
)
def test_a_missing_or_wrong_csrf_token_is_refused(sent: str | None, detail: str) -> None:
    headers = () if sent is None else (("x-csrf-token", sent),)
    with pytest.raises(PermissionDenied) as refused:
        check_csrf(scope(*headers), CookieSession(TOKEN))
    assert refused.value.code == "csrf_failed" and refused.value.detail == detail


def test_the_right_csrf_token_passes() -> None:
    check_csrf(scope(("x-csrf-token", csrf_token(TOKEN))), CookieSession(TOKEN))


@pytest.mark.parametrize(
    "headers",
    [
        (("origin", "http://console.test:8443"),),
        (("origin", "HTTP://Console.Test:8443"),),
        (("sec-fetch-site", "same-origin"),),
        (("origin", "http://console.test:8443"), ("sec-fetch-site", "same-origin")),
    ],
)
def test_the_own_origin_passes(headers: tuple[tuple[str, str], ...]) -> None:
    same_origin(scope(*headers))


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (("origin", "null"),),
        (("origin", "https://console.test:8443"),),  # another scheme is another origin
        (("origin", "http://console.test"),),
        (("origin", "http://console.test:8443.evil.example"),),
        (("origin", "http://evil.example"),),
        (("sec-fetch-site", "cross-site"),),
        (("sec-fetch-site", "same-site"),),
        (("sec-fetch-site", "none"),),
        (("origin", "http://console.test:8443"), ("sec-fetch-site", "cross-site")),
        (("sec-fetch-site", "same-origin"), ("origin", "http://evil.example")),
    ],
)
def test_another_origin_is_refused(headers: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(PermissionDenied) as refused:
        same_origin(scope(*headers))
    assert refused.value.code == "csrf_failed"


def test_without_a_host_no_origin_matches() -> None:
    bare = {"type": "http", "scheme": "http", "headers": [(b"origin", b"http://x")]}
    with pytest.raises(PermissionDenied):
        same_origin(bare)
