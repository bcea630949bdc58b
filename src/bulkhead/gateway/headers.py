"""Security headers on every response, errors included.

`X-Content-Type-Options: nosniff` always: responses carry tenants' content
(file downloads, model output, echoed names), and a browser must take each
for the type it is sent as, never sniff it into HTML or script.

HTTP Strict Transport Security while the listener speaks TLS.  RFC 6797
§7.2: the header is sent over secure transport only, so it is added only
when TLS is on; browsers then refuse plaintext for a year.

On the web console (`/console` and below), errors and redirects included, a
strict Content-Security-Policy: only the gateway's own scripts, styles,
images and API (no inline script or style, no other origin, no plugins, no
`<base>`, forms posting only here), never framed (`frame-ancestors 'none'`,
and `X-Frame-Options: DENY` for browsers that predate it), and no `Referer`
sent anywhere.  Its pages are what a person's session acts through, so a
script injected into one, or a page framing one, must find nothing to run.
"""

from __future__ import annotations

from bulkhead.web.scope import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
HSTS = (b"strict-transport-security", b"max-age=31536000")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CONSOLE = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def _console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, tls: bool):
        self.app = app
        self.headers = [NOSNIFF, HSTS] if tls else [NOSNIFF]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        added = [*self.headers, *CONSOLE] if _console(scope["path"]) else self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)
