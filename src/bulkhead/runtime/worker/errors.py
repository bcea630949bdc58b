"""OpenAI-shaped API errors raised by request handlers and rendered by the server."""

from __future__ import annotations

from typing import Final

INVALID_REQUEST: Final = "invalid_request_error"
SERVER_ERROR: Final = "server_error"


class ApiError(Exception):
    """An error that is safe to show to the client, in the OpenAI error format.

    Only messages written by this package go into an ``ApiError``; internal exceptions are
    never converted with ``str(exc)`` because that could leak paths or prompt contents.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str = INVALID_REQUEST,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type

    def body(self) -> dict[str, object]:
        """Return the JSON body that OpenAI clients expect for this error."""
        return error_body(
            self.message, param=self.param, code=self.code, error_type=self.error_type
        )


def error_body(
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    error_type: str = INVALID_REQUEST,
) -> dict[str, object]:
    """Build ``{"error": {...}}`` exactly as the OpenAI API shapes it."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """Shorthand for the 400 errors that request validation raises."""
    return ApiError(400, message, param=param, code=code)
