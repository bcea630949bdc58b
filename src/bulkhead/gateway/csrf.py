"""Step 1c: a state change made with the console's cookie must prove it comes from the console.

Right after authentication, before anything acts.  A request that is not a
safe method (GET, HEAD, OPTIONS) is refused 403 `csrf_failed` when:

- it was authenticated by the session cookie (`COOKIE_SESSION`) and does not
  come from the gateway's own origin (`Origin`, `Sec-Fetch-Site`) or does not
  carry the session's CSRF token (`X-CSRF-Token`, compared in constant time);
- it goes to the console (`/console…`, its sign-in included, which has no
  session yet: a login forged from another site would sign the victim in as
  the attacker) and does not come from the gateway's own origin.

A request with an `Authorization` header is never authenticated by the
cookie, so API clients are unaffected (`web/cookies.py` says why the cookie
needs these proofs and the header does not).
"""

from __future__ import annotations

from bulkhead.web.cookies import SAFE_METHODS, CookieSession, check_csrf, same_origin
from bulkhead.web.scope import COOKIE_SESSION, ASGIApp, Receive, Scope, Send


def _console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


class CsrfMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            cookie: CookieSession | None = scope.get(COOKIE_SESSION)
            if cookie is not None or _console(scope["path"]):
                same_origin(scope)
            if cookie is not None:
                check_csrf(scope, cookie)
        await self.app(scope, receive, send)
