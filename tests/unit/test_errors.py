"""The one mapping from Bulkhead's error tree to HTTP status, OpenAI error type and headers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bulkhead import errors as e
from bulkhead.k8s.cluster import ClusterError

# class -> (instance, status, OpenAI error type, code)
TABLE: list[tuple[e.BulkheadError, int, str, str | None]] = [
    (e.InvalidRequest("bad"), 400, "invalid_request_error", None),
    (e.MalformedJSON("bad json"), 400, "invalid_request_error", "invalid_json"),
    (e.RuleRefused("not yours", rule="rules.grantable"), 400, "invalid_request_error", None),
    (e.Unauthenticated("who?"), 401, "authentication_error", "invalid_api_key"),
    (e.PermissionDenied("no"), 403, "permission_error", "permission_denied"),
    (e.NotFound("gone"), 404, "not_found_error", "not_found"),
    (e.ModelNotFound("gpt-x"), 404, "invalid_request_error", "model_not_found"),
    (e.MethodNotAllowed("no", allow=("GET",)), 405, "invalid_request_error", "method_not_allowed"),
    (e.Conflict("twice"), 409, "conflict_error", "conflict"),
    (e.PayloadTooLarge("big"), 413, "invalid_request_error", "payload_too_large"),
    (e.UnsupportedMediaType("not json"), 415, "invalid_request_error", "unsupported_media_type"),
    (e.RateLimited("slow down"), 429, "rate_limit_error", "rate_limit_exceeded"),
    (e.UpstreamError("broke"), 502, "upstream_error", "upstream_error"),
    (e.Unavailable("later"), 503, "service_unavailable", "service_unavailable"),
    (e.KmsUnavailable(), 503, "service_unavailable", "kms_unavailable"),
    (ClusterError("no API server"), 503, "service_unavailable", "service_unavailable"),
    (e.UpstreamTimeout("slow"), 504, "upstream_timeout", "upstream_timeout"),
]
SECRET = "postgresql://bulkhead:hunter2@db.internal/bh"


def _all_subclasses(cls: type[e.BulkheadError]) -> set[type[e.BulkheadError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


def _error(body: bytes) -> dict[str, Any]:
    parsed = orjson.loads(body)
    assert list(parsed) == ["error"]
    assert set(parsed["error"]) == {"message", "type", "param", "code"}
    return dict(parsed["error"])


def test_table_covers_every_error_class() -> None:
    covered = {type(exc) for exc, *_ in TABLE}
    # Integrity failures (and their subclasses, e.g. DecryptionFailed) are opaque 500s,
    # checked below.
    integrity = {e.IntegrityFailure} | _all_subclasses(e.IntegrityFailure)
    assert covered | {e.ConfigError} | integrity <= _all_subclasses(e.BulkheadError)
    # Every error class answers with some row's mapping: its own, or a parent's
    # (e.g. identity's PeerRejected is a PermissionDenied).
    mapped = tuple(covered | {e.ConfigError, e.IntegrityFailure})
    direct = set(e.BulkheadError.__subclasses__())
    assert direct <= covered | {e.ConfigError, e.IntegrityFailure}
    assert all(issubclass(c, mapped) for c in _all_subclasses(e.BulkheadError))


def test_integrity_failures_are_opaque_500s() -> None:
    status, _, body = e.http_error(e.IntegrityFailure("ciphertext for tenant X is bad"))
    assert status == 500 and b"tenant X" not in body


@pytest.mark.parametrize(
    ("exc", "status", "kind", "code"), TABLE, ids=[type(row[0]).__name__ for row in TABLE]
)
def test_each_class_maps_to_its_status_and_type(
    exc: e.BulkheadError, status: int, kind: str, code: str | None
) -> None:
    assert e.status_of(exc) == (status, kind)
    got_status, headers, body = e.http_error(exc)
    assert got_status == status
    assert (b"content-type", b"application/json") in headers
    error = _error(body)
    assert (error["type"], error["code"], error["message"]) == (kind, code, exc.message)


def test_method_not_allowed_names_the_methods_allowed() -> None:
    _, headers, _ = e.http_error(e.MethodNotAllowed("no", allow=("GET", "POST")))
    assert (b"allow", b"GET, POST") in headers


def test_model_not_found_names_the_model_parameter() -> None:
    error = _error(e.http_error(e.ModelNotFound("gpt-x"))[2])
    assert error["param"] == "model" and "'gpt-x'" in error["message"]


def test_param_and_code_override_reach_the_body() -> None:
    exc = e.InvalidRequest("bad temperature", param="temperature", code="out_of_range")
    error = _error(e.http_error(exc)[2])
    assert (error["param"], error["code"]) == ("temperature", "out_of_range")


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(RuntimeError(f"could not connect to {SECRET}"), id="runtime-error"),
        pytest.param(KeyError(SECRET), id="key-error"),
        pytest.param(ValueError(SECRET), id="value-error"),
        pytest.param(e.BulkheadError(SECRET), id="bare-base-class"),
        pytest.param(e.ConfigError(SECRET), id="config-error"),
    ],
)
def test_anything_else_is_an_opaque_500(exc: Exception) -> None:
    status, headers, body = e.http_error(exc)
    assert status == 500 and e.status_of(exc) == (500, "server_error")
    assert b"hunter2" not in body and b"db.internal" not in body
    assert _error(body) == {
        "message": e.INTERNAL_MESSAGE,
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert [name for name, _ in headers] == [b"content-type"]


@pytest.mark.parametrize(("seconds", "header"), [(0.2, b"1"), (1, b"1"), (3, b"3"), (60, b"60")])
def test_rate_limited_sets_retry_after(seconds: float, header: bytes) -> None:
    _, headers, _ = e.http_error(e.RateLimited("slow down", retry_after_s=seconds))
    assert dict(headers)[b"retry-after"] == header


def test_rate_limited_defaults_to_one_second() -> None:
    assert dict(e.http_error(e.RateLimited("slow down"))[1])[b"retry-after"] == b"1"


@pytest.mark.parametrize("seconds", [1.4, 2.5])
def test_retry_after_is_never_shorter_than_the_wait(seconds: float) -> None:
    _, headers, _ = e.http_error(e.RateLimited("slow down", retry_after_s=seconds))
    assert int(dict(headers)[b"retry-after"]) >= seconds


def test_huge_retry_after_still_maps_to_a_response() -> None:
    huge = float("9" * 400)  # What runtime.upstream makes of such a Retry-After header.
    status, headers, _ = e.http_error(e.RateLimited("slow down", retry_after_s=huge))
    assert status == 429 and int(dict(headers)[b"retry-after"]) >= 1


def test_only_429_sets_retry_after() -> None:
    for exc, *_ in TABLE:
        has = b"retry-after" in dict(e.http_error(exc)[1])
        assert has == isinstance(exc, e.RateLimited), type(exc).__name__


def test_only_401_sets_www_authenticate() -> None:
    for exc, status, *_ in TABLE:
        headers = dict(e.http_error(exc)[1])
        if status == 401:
            assert headers[b"www-authenticate"] == b'Bearer realm="bulkhead"'
        else:
            assert b"www-authenticate" not in headers, type(exc).__name__
