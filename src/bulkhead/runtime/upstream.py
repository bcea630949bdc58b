"""A pooled client for OpenAI-compatible upstreams over TCP or a Unix socket.

Every failure of the upstream becomes one of Bulkhead's errors: unreachable
or garbage → 502, too slow → 504, its rate limit → 429, a complaint about the
request → 400 with the upstream's message (which never carries our
credentials).  Nothing from an upstream's stack trace reaches the caller.

A target with a `peer_id` is reached over mutual TLS: the client presents
the gateway's rotating SVID and the peer must present exactly that SPIFFE ID
(`bulkhead.runtime.mtls`).  Local workers always have one when worker mTLS
is on; an upstream has one when its deployment is configured with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bulkhead.errors import (
    InvalidRequest,
    RateLimited,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from bulkhead.identity.tls import RotatingIdentity
from bulkhead.runtime.mtls import MutualTlsTcpConnector, MutualTlsUnixConnector, exact_peer

# An upstream is as trustworthy as whoever set it up (a tenant may publish its own), so
# what it sends is bounded before it is buffered or parsed: a whole answer (a large
# batch of embeddings as JSON is the largest honest one), and one line of a stream.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
MAX_EVENT_BYTES = 1024 * 1024

PEER_ID_OPTION = "mtls_peer_id"
"""The deployment option naming the SPIFFE ID an upstream must present (mutual TLS)."""


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


def _upstream_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else None
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        message = None
    if not isinstance(message, str) or not message:
        return "The upstream model server rejected the request."
    return message[:500]


def _raise_for_status(status: int, body: bytes, headers: Any) -> None:
    if status < 400:
        return
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


class UpstreamClient:
    def __init__(
        self,
        *,
        connect_timeout_s: float = 5.0,
        max_connections: int = 1024,
        identity: RotatingIdentity | None = None,
    ):
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self.identity = identity  # the gateway's own SVID, for targets with a peer_id
        # One pool per socket and expected peer: a connection checked for one
        # peer ID is never reused for a target that expects another.
        self._sessions: dict[tuple[str | None, str | None], aiohttp.ClientSession] = {}

    def _connector(self, target: Target) -> aiohttp.BaseConnector:
        if target.peer_id is not None:
            if self.identity is None:
                raise Unavailable("The model server needs mutual TLS, which is not configured.")
            check = exact_peer(self.identity, target.peer_id)
            if target.unix_socket is not None:
                return MutualTlsUnixConnector(
                    target.unix_socket, context=self.identity.context, check=check
                )
            return MutualTlsTcpConnector(check=check, limit=self.max_connections)
        if target.unix_socket is None:
            return aiohttp.TCPConnector(
                limit=self.max_connections, keepalive_timeout=30, ttl_dns_cache=300
            )
        return aiohttp.UnixConnector(path=target.unix_socket, limit=64)

    def _session(self, target: Target) -> aiohttp.ClientSession:
        key = (target.unix_socket, target.peer_id)
        session = self._sessions.get(key)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=self._connector(target),
                json_serialize=lambda o: orjson.dumps(o).decode(),
                # Upstreams are on a fast network: compressing a response only costs
                # CPU on both sides, so Accept-Encoding is not sent.
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            self._sessions[key] = session
        return session

    def _timeout(self, target: Target) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None, connect=self.connect_timeout_s, sock_read=target.timeout_s
        )

    def _request(self, target: Target, path: str, payload: dict[str, Any]) -> Any:
        headers = {"content-type": "application/json", **target.headers}
        session = self._session(target)
        # Over TCP the request carries the client context; its rotation starts new
        # connections (the pool is keyed by context) while pooled ones finish.
        over_tcp = target.peer_id is not None and target.unix_socket is None
        tls = self.identity.context() if self.identity is not None and over_tcp else True
        return session.post(
            target.base_url + path,
            data=orjson.dumps(payload),
            headers=headers,
            timeout=self._timeout(target),
            ssl=tls,
        )

    async def call(self, target: Target, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST and return the upstream's JSON object."""
        try:
            async with self._request(target, path, payload) as response:
                body = await _read_bounded(response)
                _raise_for_status(response.status, body, response.headers)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout("The upstream model server timed out.") from None
        except aiohttp.ClientError:
            raise UpstreamError("The upstream model server is unreachable.") from None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError("The upstream model server returned an invalid response.")
        return data

    async def stream(
        self, target: Target, path: str, payload: dict[str, Any]
    ) -> AsyncGenerator[list[dict[str, Any]]]:
        """POST with streaming and yield the server-sent events' JSON objects in batches."""
        try:
            async with self._request(target, path, payload) as response:
                if response.status >= 400:
                    body = await _read_bounded(response)
                    _raise_for_status(response.status, body, response.headers)
                async for batch in _sse_batches(response.content):
                    yield batch
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout("The upstream model server timed out.") from None
        except aiohttp.ClientError:
            raise UpstreamError("The upstream model server is unreachable.") from None

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, or `UpstreamError` once it passes `MAX_RESPONSE_BYTES`."""
    declared = response.content_length
    if declared is not None and declared > MAX_RESPONSE_BYTES:
        raise UpstreamError("The upstream model server's answer is too large.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise UpstreamError("The upstream model server's answer is too large.")
        chunks.append(chunk)
    return b"".join(chunks)


def _event_of(data: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError("The upstream model server sent an invalid stream.") from None
    if not isinstance(event, dict):
        raise UpstreamError("The upstream model server sent an invalid stream.")
    if isinstance(event.get("error"), dict):
        raise UpstreamError("The upstream model server failed during the stream.")
    return event


async def _sse_batches(content: aiohttp.StreamReader) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield the events of an SSE stream in batches of whatever has arrived (WHATWG §9.2.6).

    Taking everything that is buffered at once, rather than a line at a time,
    lets a burst of events go to the client in one write; a slow upstream
    still gets each event forwarded as soon as it arrives.  A line longer
    than `MAX_EVENT_BYTES` ends the stream: buffering it without end would
    copy it over and over on the event loop.
    """
    pending = b""
    async for chunk in content.iter_any():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) > MAX_EVENT_BYTES:
            raise UpstreamError("The upstream model server sent an event that is too large.")
        batch: list[dict[str, Any]] = []
        for raw in lines:
            line = raw.rstrip(b"\r")
            if not line.startswith(b"data:"):
                continue
            data = line[5:].lstrip()
            if data == b"[DONE]":
                yield batch
                return
            batch.append(_event_of(data))
        if batch:
            yield batch
    raise UpstreamError("The upstream model server ended the stream early.")
