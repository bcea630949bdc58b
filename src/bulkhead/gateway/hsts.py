"""HTTP Strict Transport Security on every response while the listener speaks TLS.

RFC 6797 §7.2: the header is sent over secure transport only, so it is
added only when TLS is on; browsers then refuse plaintext for a year.
"""

from __future__ import annotations

from bulkhead.web.scope import ASGIApp, Message, Receive, Scope, Send

HSTS = (b"strict-transport-security", b"max-age=31536000")


class HstsMiddleware:
    def __init__(self, app: ASGIApp, *, enabled: bool):
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), HSTS]
            await send(message)

        await self.app(scope, receive, send_with_hsts)
