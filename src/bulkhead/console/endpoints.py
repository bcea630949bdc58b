"""The ASGI app behind `/console`: its files, and the console's sign-in, session and sign-out.

It sits at the end of the gateway's chain like the APIs: authenticated
(the session cookie, `gateway/authenticate.py`), CSRF-checked
(`gateway/csrf.py`), audited, and its Content-Security-Policy added by
`gateway/headers.py`.  The public paths (`assets.PUBLIC_PATHS`) are the
sign-in page, its API, the OIDC sign-in and the static files; every other path is judged by
Cedar here with its own action (`ROUTES`), after the gateway's
`console:surface` gate.

- `POST /console/api/login`: password and TOTP (or a recovery code) through
  the sign-in service (`admin/signin.py`: the same limits, lockout and audit
  as `/auth/v1/login`); the session token goes into the `HttpOnly` cookie
  only, never into the answer, so no script can read it.
- `GET /console/api/session`: who is signed in, and the session's CSRF token
  for the page to send back on every change (same-origin reads only: no
  other origin can read an answer of ours).
- `POST /console/api/logout`: revokes the session server-side (every
  replica), and clears the cookie.

- `GET /console/login/oidc?tenant=…` and `GET /console/login/oidc/callback`:
  sign-in through the tenant's OIDC provider (authorization code + PKCE,
  `console/oidc.py`), which ends the way `_login` does, in `set_cookie`,
  with the same session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bulkhead.admin.signin import SignInEndpoints
from bulkhead.console import assets
from bulkhead.console.oidc import OidcSignIn, send_landed
from bulkhead.domain import SignedIn
from bulkhead.errors import InvalidRequest, MethodNotAllowed, NotFound
from bulkhead.policy import Authorizer, Environment
from bulkhead.web.cookies import CookieSession, clear_cookie, set_cookie
from bulkhead.web.responses import send_bytes
from bulkhead.web.scope import (
    COOKIE_SESSION,
    Receive,
    Scope,
    Send,
    context,
    credential,
    exchange,
)

_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")
# Static files change only with the package: revalidated, never stored past a restart.
_NO_CACHE = (b"cache-control", b"no-cache")

Handler = Callable[["ConsoleEndpoints", Scope, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsoleRoute:
    method: str
    action: str | None  # None: a public path, which needs no session (and gets no decision)
    handler: Handler


def _expires_in(session: SignedIn) -> int:
    return int((session.expires_at - datetime.now(UTC)).total_seconds())


async def _send_json(send: Send, body: dict[str, Any], *headers: tuple[bytes, bytes]) -> None:
    await send_bytes(send, 200, orjson.dumps(body), [_JSON, _NO_STORE, *headers])


class ConsoleEndpoints:
    def __init__(
        self, *, sign_in: SignInEndpoints, authorizer: Authorizer, oidc: OidcSignIn | None = None
    ):
        self.sign_in = sign_in
        self.authorizer = authorizer
        self.oidc = oidc
        self.files = assets.load()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, ex = scope["path"], exchange(scope)
        ex.names(surface="console")
        route = _route(path)
        if route is None:
            raise NotFound(f"Unknown endpoint: {scope['method']} {path}")
        if scope["method"] != route.method:
            raise MethodNotAllowed(
                f"{path} does not take {scope['method']}; it takes {route.method}.",
                allow=(route.method,),
            )
        if route.action is not None:
            ex.names(action=route.action)
            env = Environment(client_ip=ex.client)
            self.authorizer.authorize(context(scope), route.action, env=env)
        await route.handler(self, scope, send)

    async def _file(self, scope: Scope, send: Send) -> None:
        asset = self.files[scope["path"]]
        cache = _NO_CACHE if scope["path"].startswith(assets.STATIC) else _NO_STORE
        await send_bytes(send, 200, asset.body, [(b"content-type", asset.content_type), cache])

    async def _login(self, scope: Scope, send: Send) -> None:
        exchange(scope).names(action="auth:login")
        token, session = await self.sign_in.sign_in(scope)
        cookie = set_cookie(token, _expires_in(session))
        await _send_json(send, _session_view(session), cookie)

    def _oidc_of(self) -> OidcSignIn:
        if self.oidc is None:
            raise NotFound("Sign-in through an identity provider is not set up here.")
        return self.oidc

    async def _oidc_start(self, scope: Scope, send: Send) -> None:
        await self._oidc_of().start(scope, send)

    async def _oidc_callback(self, scope: Scope, send: Send) -> None:
        token, session = await self._oidc_of().callback(scope, send)
        await send_landed(send, set_cookie(token, _expires_in(session)))

    async def _session(self, scope: Scope, send: Send) -> None:
        ctx, cookie = context(scope), scope.get(COOKIE_SESSION)
        found = credential(scope)
        view = {
            "principal": ctx.principal.name,
            "tenant": ctx.tenant.name if ctx.tenant is not None else None,
            "role": ctx.role.value,
            "expires_at": found.expires_at.isoformat() if found.expires_at else None,
            "csrf_token": cookie.csrf() if isinstance(cookie, CookieSession) else None,
        }
        await _send_json(send, view)

    async def _logout(self, scope: Scope, send: Send) -> None:
        found = credential(scope)
        if not isinstance(found, SignedIn) or found.kind != "session":
            raise InvalidRequest("Only a sign-in session can be signed out here.")
        await self.sign_in.end(scope, found)
        await _send_json(send, {"revoked": True}, clear_cookie())


def _session_view(session: SignedIn) -> dict[str, Any]:
    return {
        "role": session.role.value,
        "mfa": session.mfa,
        "expires_at": session.expires_at.isoformat(),
    }


_FILE = ConsoleRoute("GET", None, ConsoleEndpoints._file)
_PAGE = ConsoleRoute("GET", "console:pages.get", ConsoleEndpoints._file)
ROUTES: dict[str, ConsoleRoute] = {
    assets.SIGN_IN_PAGE: _FILE,
    assets.LOGIN: ConsoleRoute("POST", None, ConsoleEndpoints._login),
    assets.OIDC_START: ConsoleRoute("GET", None, ConsoleEndpoints._oidc_start),
    assets.OIDC_CALLBACK: ConsoleRoute("GET", None, ConsoleEndpoints._oidc_callback),
    assets.SESSION: ConsoleRoute("GET", "console:session.get", ConsoleEndpoints._session),
    assets.LOGOUT: ConsoleRoute("POST", "console:session.delete", ConsoleEndpoints._logout),
    **{path: _PAGE for path in assets.PAGES},
    **{assets.STATIC + name: _FILE for name in assets.FILES},
}


def _route(path: str) -> ConsoleRoute | None:
    return ROUTES.get(path)
