"""A pooled client for OpenAI-compatible upstreams over TCP or a Unix socket.

Every failure of the upstream becomes one of Bulkhead's errors: unreachable,
a redirect (never followed) or garbage → 502, too slow → 504, its rate limit
→ 429, a complaint about the request → 400 with the upstream's message cut to
one short printable line (it never carries our credentials).  Nothing from an
upstream's stack trace or body reaches the caller, and an answer that is no
model answer (no `choices`, no `data`) is refused rather than relayed.

A target the tenant chose (a model version's upstream) is `opaque`: every
failure there is one and the same 502, so that what comes back cannot tell a
closed port from an HTTP 401 and the upstream becomes no port scanner.  Every
TCP connection holds to an `EgressPolicy` (the target's, else the client's
own, the platform's): names and addresses are checked before connecting and
the peer once connected (`bulkhead.runtime.connect`).  Answers and stream
events are read up to a bound, since the server at the other end may be
hostile: an answer up to what the call asked for (`bulkhead.runtime.answers`:
its length limit times its choices, and so on), never above
`MAX_RESPONSE_BYTES`; larger is a 502 like any other garbage.

A target with a `peer_id` is reached over mutual TLS: the client presents
the gateway's rotating SVID and the peer must present exactly that SPIFFE ID
(`bulkhead.runtime.mtls`).  Local workers always have one when worker mTLS
is on; an upstream has one when its deployment is configured with it.

The last step, sending the prepared request, is a `Transport`: by default the
client's own pooled HTTP/1.1 one (`bulkhead.runtime.h1pool`, on httptools and
asyncio protocols: under half the CPU of aiohttp's client per call,
`bench/upstream_client_bench.py`), which holds to the same egress checks, TLS,
mutual TLS, pool bounds and read bounds; with ``native=False`` aiohttp's
client, as before; or one the caller gives (in the style of
`httpx.MockTransport`): tests answer upstream calls in process with one
(`bulkhead.testing.transport`).  Everything before
that step (egress check of the URL's host, mutual TLS configuration, the
timeouts) and everything after it (status mapping, size bounds, the answer's
and the stream's checks) runs either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson

from bulkhead.errors import (
    BulkheadError,
    InvalidRequest,
    RateLimited,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from bulkhead.identity.tls import RotatingIdentity
from bulkhead.runtime.answers import answer_limit
from bulkhead.runtime.egress import EgressPolicy, EgressRefused
from bulkhead.runtime.guarded import Resolver
from bulkhead.runtime.h1pool import H1Transport

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("bulkhead.upstream")

PEER_ID_OPTION = "mtls_peer_id"
"""The deployment option naming the SPIFFE ID an upstream must present (mutual TLS)."""
ENGINE_OPTION = "engine"
"""The deployment option naming the upstream's engine; ``vllm`` gets a per-tenant cache salt."""
OPAQUE_FAILURE = "The model's upstream server gave no usable answer."
"""What a caller learns of any failure of an upstream its tenant chose."""
MAX_MESSAGE = 200
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_EVENT_BYTES = 8 * 1024 * 1024
_TOO_LARGE = "The upstream model server's answer is too large for the call."
# OpenAI's `n` is at most 128: an answer's choices, and their indexes, stay below it.  Each
# index of a stream gets an output filter for the rest of the stream, so an upstream naming
# fresh ones without end would grow the gateway's memory without end.
MAX_CHOICES = 128


@dataclass(frozen=True, slots=True)
class Target:
    """One resolved place to send a call: URL prefix (ending in /v1), socket, headers."""

    base_url: str
    upstream_model: str
    timeout_s: float = 60.0
    unix_socket: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    # The exact SPIFFE ID the peer must present; None: no mutual TLS.
    peer_id: str | None = None
    # Fields the gateway sets in every request body (a tenant's vLLM `cache_salt`).
    body_fields: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Where a TCP connection may go; None: the client's own policy (the platform's).
    egress: EgressPolicy | None = None
    # The tenant chose this upstream: any failure is `OPAQUE_FAILURE`.
    opaque: bool = False


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One prepared upstream call, as a `Transport` gets it."""

    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    # Seconds to wait for connecting, and for each read (the response's head, each chunk).
    connect_timeout_s: float
    read_timeout_s: float
    target: Target
    method: str = "POST"


class ResponseContent(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...


class UpstreamResponse(Protocol):
    """What the client reads of an upstream's response (an `aiohttp.ClientResponse`)."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def content(self) -> ResponseContent: ...
    async def read(self) -> bytes: ...


Transport = Callable[[UpstreamRequest], AbstractAsyncContextManager[UpstreamResponse]]
"""Sends one request; its failures: `TimeoutError` (aiohttp's `ServerTimeoutError` is one,
504), `OSError` (`EgressRefused` among them) or aiohttp's `ClientError` (502)."""


def _failures() -> tuple[type[BaseException], ...]:
    """What a transport's failure to reach the upstream is: `OSError`, or aiohttp's `ClientError`.

    aiohttp is imported only by its client's path (``native=False``, or a test's
    transport): while it is not loaded, none of its errors can have been raised.
    """
    loaded = sys.modules.get("aiohttp")
    return (OSError,) if loaded is None else (loaded.ClientError, OSError)


def sanitized(message: str) -> str:
    """One short line of printable text: an upstream's words, never its layout or controls."""
    text = " ".join("".join(c if c.isprintable() else " " for c in message[:2000]).split())
    return text[:MAX_MESSAGE].rstrip()


def _upstream_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else None
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        message = None
    text = sanitized(message) if isinstance(message, str) else ""
    return text or "The upstream model server rejected the request."


def _raise_for_status(status: int, body: bytes, headers: Any) -> None:
    if 200 <= status < 300:
        return
    if status < 400:
        raise UpstreamError("The upstream model server answered with a redirect, not followed.")
    if status == 429:
        retry = headers.get("retry-after", "1")
        raise RateLimited(
            "The upstream model server is rate limiting; retry later.",
            retry_after_s=float(retry) if retry.replace(".", "", 1).isdigit() else 1.0,
        )
    if status in (400, 413, 422):
        raise InvalidRequest(_upstream_message(body))
    if status == 504:
        raise UpstreamTimeout("The upstream model server timed out.")
    raise UpstreamError(f"The upstream model server returned HTTP {status}.")


def _answer(body: bytes) -> dict[str, Any]:
    """The upstream's JSON answer, if it is a model's: choices (chat, completions) or data."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not (
        isinstance(data.get("choices"), list) or isinstance(data.get("data"), list)
    ):
        raise UpstreamError("The upstream model server returned an invalid response.")
    if data.get("choices") is not None and not _choices_ok(data["choices"]):
        raise UpstreamError("The upstream model server returned an invalid response.")
    return data


def _choices_ok(choices: object) -> bool:
    """A list of at most `MAX_CHOICES` objects, each with an index below it (if it has one).

    Checked here, where an upstream's answer enters: the layers after it walk
    the choices, and an upstream may be hostile (a tenant may run its own).
    """
    if not isinstance(choices, list) or len(choices) > MAX_CHOICES:
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            return False
        index = choice.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < MAX_CHOICES:
            return False
    return True


async def _read(response: UpstreamResponse, limit: int | None = None) -> bytes:
    """The whole body, refusing one larger than `limit` (at most `MAX_RESPONSE_BYTES`)."""
    limit = MAX_RESPONSE_BYTES if limit is None else min(limit, MAX_RESPONSE_BYTES)
    declared = response.content_length
    if declared is not None and declared > limit:
        raise UpstreamError(_TOO_LARGE)
    if declared is not None:
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise UpstreamError(_TOO_LARGE)
    return bytes(body)


def _outward(target: Target, exc: BulkheadError) -> BulkheadError:
    """What the caller learns of a failure: the error itself, or for an opaque target one 502."""
    if not target.opaque:
        return exc
    # Precise inside: the kind of failure goes to the log, never to the tenant.
    log.info("a tenant's upstream failed: %s", type(exc).__name__)
    return UpstreamError(OPAQUE_FAILURE)


SessionKey = tuple[str | None, str | None, EgressPolicy | None]


class UpstreamClient:
    def __init__(
        self,
        *,
        connect_timeout_s: float = 5.0,
        max_connections: int = 1024,
        identity: RotatingIdentity | None = None,
        egress: EgressPolicy | None = None,
        resolver: Callable[[], Resolver] | None = None,
        transport: Transport | None = None,
        native: bool = True,
    ):
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self.identity = identity  # the gateway's own SVID, for targets with a peer_id
        # The policy of targets that bring none: the platform's own deployments.
        self.egress = egress if egress is not None else EgressPolicy.platform()
        # DNS under every policy's check (tests pass a fake; None: the system's).
        self.resolver = resolver
        # Sends the prepared request (tests answer in process); None: the client's own
        # pooled HTTP/1.1 transport (`h1pool`), or with `native=False` aiohttp's.
        self.transport = transport
        self._native = (
            H1Transport(
                egress=self.egress,
                max_connections=max_connections,
                identity=identity,
                resolver=resolver,
            )
            if transport is None and native
            else None
        )
        # One pool per socket, expected peer and egress policy: a connection checked
        # for one peer ID or policy is never reused for a target that expects another.
        self._sessions: dict[SessionKey, aiohttp.ClientSession] = {}
        # (policy, base URL) pairs whose host passed `check_host`: the check is a pure
        # function of the two, and parsing an address on every call costs ~15 µs.
        self._admitted: set[tuple[EgressPolicy, str]] = set()
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}  # by the read timeout

    def _policy(self, target: Target) -> EgressPolicy:
        return target.egress if target.egress is not None else self.egress

    def _session(self, target: Target) -> aiohttp.ClientSession:
        tcp = target.unix_socket is None
        key = (target.unix_socket, target.peer_id, self._policy(target) if tcp else None)
        session = self._sessions.get(key)
        if session is None or session.closed:
            import aiohttp  # aiohttp's client only (native=False): off the serving path

            from bulkhead.runtime.connect import connector_for

            connector = connector_for(
                target,
                identity=self.identity,
                policy=self._policy(target),
                limit=self.max_connections,
                resolver=self.resolver,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                # Upstreams are on a fast network: compressing a response only costs
                # CPU on both sides, so Accept-Encoding is not sent.
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            self._sessions[key] = session
        return session

    def _check_host(self, target: Target) -> None:
        """aiohttp does not ask the resolver about an IP literal: check the URL's host here."""
        key = (self._policy(target), target.base_url)
        if key in self._admitted:
            return
        key[0].check_host(urlsplit(target.base_url).hostname or "")
        if len(self._admitted) > 4096:
            self._admitted.clear()
        self._admitted.add(key)

    def _timeout(self, target: Target) -> aiohttp.ClientTimeout:
        """One (immutable) `ClientTimeout` per read timeout, not one built per call."""
        timeout = self._timeouts.get(target.timeout_s)
        if timeout is None:
            import aiohttp  # aiohttp's client only (native=False): off the serving path

            timeout = aiohttp.ClientTimeout(
                total=None, connect=self.connect_timeout_s, sock_read=target.timeout_s
            )
            if len(self._timeouts) < 1024:  # models' timeouts are few; never unbounded
                self._timeouts[target.timeout_s] = timeout
        return timeout

    def _check_mtls(self, target: Target) -> None:
        if self.identity is None:
            raise Unavailable("The model server needs mutual TLS, which is not configured.")
        if target.unix_socket is None and not target.base_url.startswith("https://"):
            raise Unavailable("The model server needs mutual TLS, so an https URL.")

    def _request(self, target: Target, path: str, data: bytes) -> Any:
        headers = {"content-type": "application/json", **target.headers}
        if target.unix_socket is None:
            self._check_host(target)
        if target.peer_id is not None:
            self._check_mtls(target)
        send = self.transport if self.transport is not None else self._native
        if send is not None:
            return send(
                UpstreamRequest(
                    url=target.base_url + path,
                    headers=headers,
                    body=data,
                    connect_timeout_s=self.connect_timeout_s,
                    read_timeout_s=target.timeout_s,
                    target=target,
                )
            )
        session = self._session(target)
        # Over TCP the request carries the client context; its rotation starts new
        # connections (the pool is keyed by context) while pooled ones finish.
        over_tcp = target.peer_id is not None and target.unix_socket is None
        tls = self.identity.context() if self.identity is not None and over_tcp else True
        return session.post(
            target.base_url + path,
            data=data,
            headers=headers,
            timeout=self._timeout(target),
            ssl=tls,
            # A redirect is an upstream error: following one would take the request
            # (and its credential) wherever the upstream pointed, inside included.
            allow_redirects=False,
        )

    async def call(self, target: Target, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST and return the upstream's JSON answer."""
        try:
            return await self._call(target, path, payload)
        except BulkheadError as exc:
            raise _outward(target, exc) from None

    async def _call(self, target: Target, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        data = orjson.dumps(payload)
        try:
            async with self._request(target, path, data) as response:
                ok = 200 <= response.status < 300
                body = await _read(response, answer_limit(path, payload, len(data)) if ok else None)
                _raise_for_status(response.status, body, response.headers)
        except TimeoutError:
            raise UpstreamTimeout("The upstream model server timed out.") from None
        except _failures() as exc:
            raise _unreachable(exc) from None
        return _answer(body)

    async def stream(
        self, target: Target, path: str, payload: dict[str, Any]
    ) -> AsyncGenerator[Batch]:
        """POST with streaming and yield the server-sent events' JSON objects in batches."""
        try:
            # Closing this generator closes the inner one at once, which stops the generation.
            async with contextlib.aclosing(self._stream(target, path, payload)) as batches:
                async for batch in batches:
                    yield batch
        except BulkheadError as exc:
            raise _outward(target, exc) from None

    async def _stream(
        self, target: Target, path: str, payload: dict[str, Any]
    ) -> AsyncGenerator[Batch]:
        try:
            async with self._request(target, path, orjson.dumps(payload)) as response:
                if not 200 <= response.status < 300:
                    _raise_for_status(response.status, await _read(response), response.headers)
                async for batch in _sse_batches(response.content):
                    yield batch
        except TimeoutError:
            raise UpstreamTimeout("The upstream model server timed out.") from None
        except _failures() as exc:
            raise _unreachable(exc) from None

    async def close(self) -> None:
        if self._native is not None:
            await self._native.close()
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def _unreachable(exc: BaseException) -> UpstreamError:
    refused = exc if isinstance(exc, EgressRefused) else exc.__cause__
    if isinstance(refused, EgressRefused):
        log.warning("refused an upstream connection: %s", refused.reason)
        return UpstreamError("The upstream's address is not allowed by the egress policy.")
    return UpstreamError("The upstream model server is unreachable.")


def _event_of(data: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError("The upstream model server sent an invalid stream.") from None
    if not isinstance(event, dict):
        raise UpstreamError("The upstream model server sent an invalid stream.")
    if isinstance(event.get("error"), dict):
        raise UpstreamError("The upstream model server failed during the stream.")
    if event.get("choices") is not None and not _choices_ok(event["choices"]):
        raise UpstreamError("The upstream model server sent an invalid stream.")
    return event


class Batch(list[dict[str, Any]]):
    """Events of a stream that arrived together; `size` is the bytes of their data lines."""

    __slots__ = ("size",)
    size: int


async def _sse_batches(content: ResponseContent) -> AsyncIterator[Batch]:
    """Yield the events of an SSE stream in batches of whatever has arrived (WHATWG §9.2.6).

    Taking everything that is buffered at once, rather than a line at a time,
    lets a burst of events go to the client in one write; a slow upstream
    still gets each event forwarded as soon as it arrives.  An unfinished
    line is kept in pieces and joined once its end arrives: appending each
    chunk to it would copy it over and over on the event loop (quadratic in
    a long line's length).
    """
    partial: list[bytes] = []  # the unfinished line, in the pieces it arrived in
    held = 0
    async for chunk in content.iter_any():
        *lines, rest = chunk.split(b"\n")
        if lines and partial:
            lines[0] = b"".join((*partial, lines[0]))
            partial, held = [], 0
        if rest:
            partial.append(rest)
            held += len(rest)
        if held > MAX_EVENT_BYTES:
            raise UpstreamError("The upstream model server sent an event that is too large.")
        batch = Batch()
        batch.size = 0  # set here, not in an __init__: this runs for every chunk read
        for raw in lines:
            line = raw.rstrip(b"\r")
            if not line.startswith(b"data:"):
                continue
            data = line[5:].lstrip()
            if data == b"[DONE]":
                yield batch
                return
            batch.append(_event_of(data))
            batch.size += len(data)
        if batch:
            yield batch
    raise UpstreamError("The upstream model server ended the stream early.")
