"""The CSRF layer: which requests must prove they come from the console (`gateway/csrf.py`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bulkhead.errors import PermissionDenied
from bulkhead.gateway.csrf import CsrfMiddleware
from bulkhead.web.cookies import CookieSession, csrf_token
from bulkhead.web.scope import COOKIE_SESSION

TOKEN = "bks_" + "a" * 32 + "_" + "b" * 43
OWN = ("origin", "http://gw.test")


def run(method: str, path: str, *headers: tuple[str, str], cookie: bool = False) -> bool:
    reached = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "scheme": "http",
        "headers": [(b"host", b"gw.test"), *((k.encode(), v.encode()) for k, v in headers)],
    }
    if cookie:
        scope[COOKIE_SESSION] = CookieSession(TOKEN)
    asyncio.run(CsrfMiddleware(app)(scope, None, None))  # type: ignore[arg-type]
    return bool(reached)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safe_methods_pass_untouched(method: str) -> None:
    assert run(method, "/tenant/v1/keys", ("origin", "http://evil.test"), cookie=True)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_change_with_the_cookie_needs_origin_and_token(method: str) -> None:
    token = ("x-csrf-token", csrf_token(TOKEN))
    assert run(method, "/tenant/v1/keys", OWN, token, cookie=True)
    for headers in ((OWN,), (token,), (("origin", "http://evil.test"), token)):
        with pytest.raises(PermissionDenied):
            run(method, "/tenant/v1/keys", *headers, cookie=True)


def test_a_bearer_change_needs_neither() -> None:
    assert run("POST", "/tenant/v1/keys")
    assert run("POST", "/v1/chat/completions", ("origin", "http://evil.test"))


def test_the_console_sign_in_needs_the_own_origin_without_a_session() -> None:
    assert run("POST", "/console/api/login", OWN)
    with pytest.raises(PermissionDenied):
        run("POST", "/console/api/login", ("origin", "http://evil.test"))
    with pytest.raises(PermissionDenied):
        run("POST", "/console/api/login")
