"""The CLI's HTTP client of the management API, like kubectl's of the API server."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from bulkhead.settings import DEFAULT_DATA_DIR, DEFAULT_URL


class ApiError(Exception):
    """An error answer; `param` is the request field the server named, `given_as` how the
    user gave it (`option --expires`), when the command knows."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        param: str | None = None,
        given_as: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.given_as = given_as

    def describe(self) -> str:
        """The message, naming the flag (or the field) it is about."""
        return about(self.message, self.param, self.given_as)


def about(message: str, param: str | None, given_as: str | None) -> str:
    """`message (option --x)`: which of the user's flags a complaint is about."""
    if given_as:
        return f"{message} ({given_as})"
    if param:
        return f"{message} (field '{param}')"
    return message


def field_root(param: str) -> str:
    """`models.0` is about the `models` field."""
    return param.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class Profile:
    url: str
    key: str | None = field(repr=False)


def profile_path(data_dir: str | None) -> Path:
    return (
        Path(data_dir or os.environ.get("BULKHEAD_DATA_DIR") or DEFAULT_DATA_DIR) / "profile.json"
    )


def read_profile(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def resolve_profile(server: str | None, key: str | None, data_dir: str | None) -> Profile:
    """Flags, then BULKHEAD_URL / BULKHEAD_KEY, then the profile: its session (`bulkhead login`)
    before the key `init` wrote."""
    saved = read_profile(profile_path(data_dir))
    return Profile(
        url=(server or os.environ.get("BULKHEAD_URL") or saved.get("url") or DEFAULT_URL).rstrip(
            "/"
        ),
        key=key or os.environ.get("BULKHEAD_KEY") or saved.get("session") or saved.get("key"),
    )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: following one would carry the bearer key to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


class Client:
    """`fields` maps a request field to how the user gave it (`option --expires`), so an
    error about the field names the flag."""

    def __init__(
        self, profile: Profile, timeout_s: float = 30.0, fields: Mapping[str, str] | None = None
    ):
        self.profile = profile
        self.timeout_s = timeout_s
        self.fields = dict(fields or {})
        self._opener = urllib.request.build_opener(_NoRedirects())

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        authenticated: bool = True,
        binary: bool = False,
    ) -> Any:
        """Send one request; `authenticated=False` is for sign-in, which carries no credential;
        `binary` answers the body's bytes as they came, not parsed JSON."""
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        try:
            with self._open(method, path, data, content_type, authenticated) as response:
                raw = response.read()
        except (http.client.HTTPException, OSError):
            raise self._unreachable() from None
        if binary:
            return raw
        return json.loads(raw) if raw else None

    @contextlib.contextmanager
    def stream(self, path: str) -> Iterator[BinaryIO]:
        """A GET's answer as a stream, read as it arrives (a model's weights: never whole
        in memory); a failed read raises `http.client.HTTPException` or `OSError`."""
        with self._open("GET", path, None, "application/json", True) as response:
            yield response

    def _unreachable(self) -> ApiError:
        return ApiError(0, f"cannot reach {self.profile.url} (is `bulkhead serve` running?)")

    def _open(
        self, method: str, path: str, data: bytes | None, content_type: str, authenticated: bool
    ) -> http.client.HTTPResponse:
        """The response to one request, its status 2xx (else an `ApiError`), body unread."""
        if authenticated and not self.profile.key:
            raise ApiError(0, "no credential: pass --key, set BULKHEAD_KEY, or run `bulkhead init`")
        if not self.profile.url.startswith(("http://", "https://")):
            raise ApiError(0, f"server URL must be http(s)://, got {self.profile.url!r}")
        # The scheme is checked just above, so no file: or custom scheme gets opened.
        req = urllib.request.Request(self.profile.url + path, data=data, method=method)  # noqa: S310
        if authenticated:
            req.add_header("authorization", f"Bearer {self.profile.key}")
        if data is not None:
            req.add_header("content-type", content_type)
        try:
            response: http.client.HTTPResponse = self._opener.open(req, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise ApiError(
                    exc.code, "the server answered with a redirect (not followed)"
                ) from None
            raise self._error(exc.code, exc.read()) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError):
            raise self._unreachable() from None
        return response

    def _error(self, status: int, detail: bytes) -> ApiError:
        param = _error_field(detail, "param")
        given_as = self.fields.get(field_root(param)) if param else None
        return ApiError(
            status,
            _error_message(detail),
            _error_field(detail, "code"),
            param=param,
            given_as=given_as,
        )

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body if body is not None else {})

    def download(self, path: str) -> bytes:
        body: bytes = self.request("GET", path, binary=True)
        return body

    def upload(self, path: str, data: bytes, content_type: str) -> Any:
        return self.request("POST", path, raw=data, content_type=content_type)


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return "the server returned an error"


def _error_field(raw: bytes, name: str) -> str | None:
    try:
        value = json.loads(raw)["error"][name]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None
