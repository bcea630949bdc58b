"""The transport's fast paths (session 14) equal the slower code they replaced.

A request body that came in one piece is handed to the application as that
very object, and one in several pieces joined, as the copy into a bytearray
gave it.

`web.h1call.Call._start` (the answer's head) checks every header with one
pass over all names and one over all values, since both rules hold of each
character.  The reference below is the code of before (session 13), kept
here so that any header, hostile ones included, is refused or written
exactly as it was.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bulkhead.web.h1call import STATUS_LINES, Call

DATE = b"date: Mon, 07 Dec 2026 14:00:00 GMT\r\n"

# Bytes that matter to the rules (token characters, separators, controls, CR, LF, NUL,
# tab, space, high bytes) much more often than uniform bytes would give them.
_INTERESTING = b"aZ09!#-_.~:; \t\r\n\x00\x01\x1f\x7f\x80\xff" + b"content-lgthrasfoi"
_PIECES = st.binary(max_size=12) | st.lists(st.sampled_from(_INTERESTING), max_size=12).map(bytes)
_NAMES = _PIECES | st.sampled_from(
    [b"content-length", b"Content-Length", b"transfer-encoding", b"connection", b"Connection"]
)
_VALUES = _PIECES | st.sampled_from([b"12", b"close", b"keep-alive, Close", b"chunked"])


# The reference: `Call._start`'s checks and head as they were before the one-pass version.
_OLD_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_OLD_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _old_head(
    headers: list[tuple[bytes, bytes]], status: int, keep_alive: bool
) -> tuple[bytes, int, bool]:
    """(head, remaining, keep_alive) as the per-header code wrote them (HTTP/1.1, not HEAD)."""
    names = b"".join(name for name, _ in headers)
    values = b"".join(value for _, value in headers)
    if (
        _OLD_BAD_NAME.search(names)
        or _OLD_BAD_VALUE.search(values)
        or not all(n for n, _ in headers)
    ):
        raise RuntimeError("forbidden")
    remaining, close_asked = -1, False
    lines = [STATUS_LINES[status], DATE]
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length":
            remaining = int(value)
            continue
        elif lower == b"transfer-encoding":
            continue
        elif lower == b"connection":
            if b"close" in value.lower():
                close_asked = True
                keep_alive = False
            continue
        lines.append(b"%s: %s\r\n" % (name, value))
    if not keep_alive or close_asked:
        lines.append(b"connection: close\r\n")
    if remaining >= 0:
        lines.append(b"content-length: %d\r\n" % remaining)
    elif status not in (204, 304):
        lines.append(b"transfer-encoding: chunked\r\n")
    lines.append(b"\r\n")
    if status in (204, 304):
        remaining = 0
    return b"".join(lines), remaining, keep_alive


class _State:
    date_header = DATE


class _Conn:
    """What `Call._start` uses of its connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.state = _State()


def _new_head(
    headers: list[tuple[bytes, bytes]], status: int, keep_alive: bool
) -> tuple[bytes, int, bool]:
    loop = asyncio.new_event_loop()
    try:
        scope: dict[str, Any] = {"method": "POST", "http_version": "1.1", "headers": []}
        call = Call(_Conn(loop), scope, keep_alive)  # type: ignore[arg-type]
        call.more_body = False
        call._start({"type": "http.response.start", "status": status, "headers": headers})
        return call.held, call.remaining, call.keep_alive
    finally:
        loop.close()


def _outcome(make: Any, *args: Any) -> Any:
    try:
        return make(*args)
    except (RuntimeError, ValueError) as exc:  # ValueError: a Content-Length not a number
        return type(exc)


@settings(max_examples=400, deadline=None)
@given(
    headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
    status=st.sampled_from([200, 204, 400, 413]),
    keep_alive=st.booleans(),
)
@example(headers=[(b"x-a", b"ok"), (b"content-length", b"3")], status=200, keep_alive=True)
@example(headers=[(b"bad name", b"v")], status=200, keep_alive=True)
@example(headers=[(b"x", b"a\r\nset-cookie: s=1")], status=200, keep_alive=True)
@example(headers=[(b"", b"v")], status=200, keep_alive=True)
@example(headers=[(b"Connection", b"Close"), (b"x", b"\tv\x80")], status=200, keep_alive=True)
def test_the_answers_head_is_what_the_per_header_code_wrote(
    headers: list[tuple[bytes, bytes]], status: int, keep_alive: bool
) -> None:
    assert _outcome(_new_head, headers, status, keep_alive) == _outcome(
        _old_head, headers, status, keep_alive
    )


def test_a_name_holding_a_colon_and_space_is_refused() -> None:
    """The one header a whole-block match would have let through (`a: b: v` parses)."""
    with pytest.raises(RuntimeError):
        _new_head([(b"a: b", b"v")], 200, True)


def _received(pieces: list[bytes]) -> bytes:
    loop = asyncio.new_event_loop()
    try:

        class Conn(_Conn):
            def body_wanted(self) -> None: ...
            def body_paused(self) -> None: ...

        scope: dict[str, Any] = {"method": "POST", "http_version": "1.1", "headers": []}
        call = Call(Conn(loop), scope, True)  # type: ignore[arg-type]
        for piece in pieces:
            call.body_received(piece)
        call.more_body = False
        message = loop.run_until_complete(call.receive())
        assert message["type"] == "http.request" and message["more_body"] is False
        body: bytes = message["body"]
        assert isinstance(body, bytes)
        return body
    finally:
        loop.close()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=50), max_size=5))
def test_the_request_body_is_its_pieces_joined(pieces: list[bytes]) -> None:
    assert _received(pieces) == b"".join(pieces)


def test_a_body_in_one_piece_is_handed_over_uncopied() -> None:
    piece = b"x" * 1000
    assert _received([piece]) is piece
