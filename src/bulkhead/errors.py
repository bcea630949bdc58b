"""Bulkhead's one error tree and its one mapping to HTTP.

    BulkheadError
    ├── InvalidRequest ............ 400 invalid_request_error
    │   ├── MalformedJSON ......... 400 invalid_request_error / invalid_json
    │   └── ContentBlocked ........ 400 invalid_request_error / content_filter
    ├── Unauthenticated ........... 401 authentication_error
    ├── PermissionDenied .......... 403 permission_error
    ├── NotFound .................. 404 not_found_error
    │   └── ModelNotFound ......... 404 invalid_request_error / model_not_found
    ├── MethodNotAllowed .......... 405 invalid_request_error / method_not_allowed (+ Allow)
    ├── Conflict .................. 409 conflict_error
    ├── PayloadTooLarge ........... 413 invalid_request_error / payload_too_large
    ├── UnsupportedMediaType ...... 415 invalid_request_error / unsupported_media_type
    ├── RateLimited ............... 429 rate_limit_error
    ├── UpstreamError ............. 502 upstream_error
    ├── Unavailable ............... 503 service_unavailable
    │   ├── AuditUnavailable ...... 503 service_unavailable / audit_unavailable
    │   └── KmsUnavailable ........ 503 service_unavailable / kms_unavailable
    ├── UpstreamTimeout ........... 504 upstream_timeout
    ├── IntegrityFailure .......... 500 server_error (opaque)
    └── ConfigError ............... (start-up only: one line, exit 2)

Domain code raises these with meaning, never with HTTP; the outermost gateway
layer turns any of them into a status and an OpenAI-format error body through
`http_error`, and nothing else builds error responses.  Messages are written
for the client: they never contain secrets, stack traces or another tenant's
facts.
"""

from __future__ import annotations

import math
from typing import Any

import orjson


class BulkheadError(Exception):
    """Base of every error Bulkhead raises on purpose.

    `detail` is for the audit log only (the real reason behind an answer that is
    kept vague on purpose, such as "account locked" behind "incorrect password");
    it never reaches the client.
    """

    code: str | None = None
    detail: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(BulkheadError):
    """The request is malformed or violates the API's rules."""


class MalformedJSON(InvalidRequest):
    code = "invalid_json"


class RuleRefused(InvalidRequest):
    """A self-service rule refused the call (a role the caller may not hand out, a key that
    would outlive its issuer's): a 400 to the client, a denial naming `rule` in the audit log."""

    def __init__(self, message: str, *, rule: str, param: str | None = None):
        super().__init__(message, param=param)
        self.rule = rule


class ContentBlocked(InvalidRequest):
    """A tenant guard refused the content: PII, a secret, prompt injection, a canary leak.

    `reasons` are labels for the audit log (`"pii:card"`, `"injection:override"`,
    `"canary"`), never the matched text; the client sees only the message.
    """

    code = "content_filter"

    def __init__(self, message: str, *, reasons: tuple[str, ...] = (), param: str | None = None):
        super().__init__(message, param=param)
        self.reasons = reasons


class Unauthenticated(BulkheadError):
    code = "invalid_api_key"


class PermissionDenied(BulkheadError):
    """`policy` names the policy that decided the deny: the audit log records it."""

    code = "permission_denied"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        policy: str | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.policy = policy


class NotFound(BulkheadError):
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, model: str):
        super().__init__(
            f"The model '{model}' does not exist or you do not have access to it.", param="model"
        )


class MethodNotAllowed(BulkheadError):
    """A known path asked with a method it does not take; `allow` lists those it does."""

    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: tuple[str, ...]):
        super().__init__(message)
        self.allow = allow


class Conflict(BulkheadError):
    code = "conflict"


class PayloadTooLarge(BulkheadError):
    code = "payload_too_large"


class UnsupportedMediaType(BulkheadError):
    code = "unsupported_media_type"


class RateLimited(BulkheadError):
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        # Extra response headers (the x-ratelimit-* family), set by whoever knows them.
        self.headers: list[tuple[bytes, bytes]] = []


class UpstreamError(BulkheadError):
    code = "upstream_error"


class Unavailable(BulkheadError):
    code = "service_unavailable"


class AuditUnavailable(Unavailable):
    """Audit events cannot be written: the gateway refuses work until they can (fail closed)."""

    code = "audit_unavailable"


class KmsUnavailable(Unavailable):
    """The key service (an HSM) cannot be reached: key operations wait until it can."""

    code = "kms_unavailable"

    def __init__(self, message: str = "The key service is unavailable; try again shortly."):
        super().__init__(message)


class UpstreamTimeout(BulkheadError):
    code = "upstream_timeout"


class IntegrityFailure(BulkheadError):
    """Stored data failed its integrity check (e.g. a ciphertext that does not open).

    Fail closed, and say nothing more to the client than "server error".
    """


class ConfigError(BulkheadError):
    """A bad setting found at start-up; reported as one line, exit status 2."""


# One table: error class -> (HTTP status, OpenAI error type).  Order matters:
# subclasses come before their parents.
_STATUS: tuple[tuple[type[BulkheadError], int, str], ...] = (
    (ModelNotFound, 404, "invalid_request_error"),
    (MalformedJSON, 400, "invalid_request_error"),
    (InvalidRequest, 400, "invalid_request_error"),
    (Unauthenticated, 401, "authentication_error"),
    (PermissionDenied, 403, "permission_error"),
    (NotFound, 404, "not_found_error"),
    (MethodNotAllowed, 405, "invalid_request_error"),
    (Conflict, 409, "conflict_error"),
    (PayloadTooLarge, 413, "invalid_request_error"),
    (UnsupportedMediaType, 415, "invalid_request_error"),
    (RateLimited, 429, "rate_limit_error"),
    (UpstreamError, 502, "upstream_error"),
    (Unavailable, 503, "service_unavailable"),
    (UpstreamTimeout, 504, "upstream_timeout"),
    (IntegrityFailure, 500, "server_error"),
)

INTERNAL_MESSAGE = "The server had an error while processing your request."


def status_of(exc: BaseException) -> tuple[int, str]:
    """Return (HTTP status, OpenAI error type) for any exception."""
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "server_error"


def http_error(exc: BaseException) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Map an exception to (status, headers, body) in the OpenAI error format.

    Anything that is not a `BulkheadError` becomes an opaque 500: its text may
    hold internals, so it never reaches the client.
    """
    status, kind = status_of(exc)
    error: dict[str, Any]
    if isinstance(exc, BulkheadError) and status != 500:
        error = {"message": exc.message, "type": kind, "param": exc.param, "code": exc.code}
    else:
        error = {"message": INTERNAL_MESSAGE, "type": kind, "param": None, "code": None}
    headers = [(b"content-type", b"application/json")]
    if isinstance(exc, RateLimited):
        wait = exc.retry_after_s if math.isfinite(exc.retry_after_s) else 86400.0
        headers.append((b"retry-after", str(min(86400, max(1, math.ceil(wait)))).encode()))
        headers.extend(exc.headers)
    if isinstance(exc, MethodNotAllowed):
        headers.append((b"allow", ", ".join(exc.allow).encode("ascii")))
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="bulkhead"'))
    return status, headers, orjson.dumps({"error": error})
