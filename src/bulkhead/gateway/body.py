"""Reads a request body within the size limit, and parses JSON for the model API.

Runs after authentication, so an anonymous client cannot make the gateway
buffer anything — except on the sign-in paths (`/auth/v1` and the
console's, whose every body is as small), which are public: their
bodies (a name, a password, a one-time code) get `SIGN_IN_LIMIT`, checked
against the declared length before a byte is read.  The body is read once;
later layers take it from the scope.  A JSON body's shape is bounded before
orjson sees it (`web.jsonbody`: too many values, or nested too deep, is
refused), and a large body is parsed on a worker thread in pieces
(`web.jsonpieces`): orjson holds the interpreter lock for the whole of one
parse, 10 ms and more for the largest bodies, and the event loop would wait
for it whichever thread parsed.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from bulkhead.errors import InvalidRequest, MalformedJSON, PayloadTooLarge
from bulkhead.gateway.endpoints import Body, endpoint_of
from bulkhead.gateway.offload import Offload, job_owner
from bulkhead.web import jsonpieces
from bulkhead.web.jsonbody import check_shape, require_json_media_type
from bulkhead.web.scope import (
    BODY,
    CONTEXT,
    JSON,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    header,
    set_once,
)

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# A model import (weights) may be far larger than any other body; only a
# platform principal gets that limit, so a tenant key cannot make us buffer it.
_MODEL_IMPORT = re.compile(r"/admin/v1/tenants/[^/]+/model-artifacts")
# Sign-in bodies come from anonymous clients.  The largest field is a password
# of at most 1024 characters: 6 KiB even if each is JSON-escaped as \uXXXX.
SIGN_IN_PREFIX = ("/auth/v1/", "/console/")
SIGN_IN_LIMIT = 8 * 1024


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("Client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_object(body: bytes) -> dict[str, Any]:
    """The JSON object in `body`, in pieces when it is large (see the module's docstring)."""
    if not body:
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        value = jsonpieces.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedJSON(
            "We could not parse the JSON body of your request. Send valid JSON."
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return value


def _checked(body: bytes) -> dict[str, Any]:
    check_shape(body)
    return parse_object(body)


class BodyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        file_limit: int,
        model_limit: int | None = None,
        offload: Offload | None = None,
    ):
        self.app = app
        self.offload = offload or Offload()
        self.limit = limit
        # Uploads may be larger than API calls; multipart framing gets 64 KiB of slack.
        self.file_limit = file_limit + 65536
        self.model_limit = model_limit if model_limit is not None else limit

    def _limit(self, scope: Scope) -> int:
        path = scope["path"]
        endpoint = endpoint_of(scope)
        if endpoint is not None and endpoint.body is Body.UPLOAD:
            return self.file_limit
        if path.startswith(SIGN_IN_PREFIX):
            return min(self.limit, SIGN_IN_LIMIT)
        ctx = scope.get(CONTEXT)
        if ctx is not None and ctx.is_platform and _MODEL_IMPORT.fullmatch(path):
            return self.model_limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        body = await read_body(scope, receive, self._limit(scope))
        set_once(scope, BODY, body)
        endpoint = endpoint_of(scope)
        if endpoint is not None and endpoint.body is Body.JSON:
            require_json_media_type(scope)
            parsed = await self.offload.run(job_owner(scope), len(body), _checked, body)
            set_once(scope, JSON, parsed)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
