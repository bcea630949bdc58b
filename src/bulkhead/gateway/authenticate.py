"""Step 1b: authenticate the bearer API key against the in-memory catalog."""

from __future__ import annotations

from datetime import UTC, datetime

from bulkhead.errors import Unauthenticated
from bulkhead.identity import parse_key, verify_secret
from bulkhead.store import Catalog
from bulkhead.web.scope import CREDENTIAL, ASGIApp, Receive, Scope, Send, exchange, header

_BEARER = b"bearer "


def bearer_token(scope: Scope) -> str:
    value = header(scope, b"authorization")
    if value is None:
        raise Unauthenticated(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        )
    if value[:7].lower() != _BEARER:
        raise Unauthenticated("Authorization header must use the Bearer scheme.")
    return value[7:].strip().decode("latin-1")


class AuthenticationMiddleware:
    """Every path except the explicit public allowlist needs a valid credential."""

    def __init__(self, app: ASGIApp, *, catalog: Catalog, public: frozenset[str]):
        self.app = app
        self.catalog = catalog
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        key_id = parse_key(token)
        key = self.catalog.snapshot.keys.get(key_id)
        if key is None:
            raise Unauthenticated("Incorrect API key provided.")
        verify_secret(token, key.secret_hash)
        exchange(scope).credential_id = key.id
        if not key.usable_at(datetime.now(UTC)):
            raise Unauthenticated("This API key is revoked or expired.")
        scope[CREDENTIAL] = key
        await self.app(scope, receive, send)
