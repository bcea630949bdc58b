"""Security headers on every response, errors included.

`X-Content-Type-Options: nosniff` always: responses carry tenants' content
(file downloads, model output, echoed names), and a browser must take each
for the type it is sent as, never sniff it into HTML or script.

HTTP Strict Transport Security while the listener speaks TLS.  RFC 6797
§7.2: the header is sent over secure transport only, so it is added only
when TLS is on; browsers then refuse plaintext for a year.
"""

from __future__ import annotations

from bulkhead.web.scope import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, tls: bool):
        self.app = app
        self.headers = [NOSNIFF, HSTS] if tls else [NOSNIFF]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
