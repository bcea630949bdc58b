"""A hostile upstream against the client's own HTTP/1.1 transport (review of `runtime/h1*.py`).

Each case is what a tenant admin who points a model version at a server it
controls could do to the gateway: hold a call open past its timeout by
dribbling bytes, grow the gateway's connections without bound, or leave
connections open behind failed checks.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
from pathlib import Path

import pytest
from tests.unit.runtime.test_h1_client import (
    ANSWER,
    CHAT,
    SSE,
    TD,
    WORKER_ID,
    Server,
    _svid,
    read_request,
    run,
    sized,
)

from bulkhead.errors import UpstreamError, UpstreamTimeout
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.tls import RotatingIdentity, mtls_context_from_pem
from bulkhead.runtime import h1pool
from bulkhead.runtime import upstream as upstream_module
from bulkhead.runtime.egress import EgressPolicy, parse_entries
from bulkhead.runtime.upstream import Target, UpstreamClient


async def _dribbler(head: bytes, drip: bytes) -> tuple[str, asyncio.Server]:
    """A server that sends `head` at once, then one byte of `drip` every 50 ms, forever."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head)
        try:
            for n in range(10_000):
                writer.write(drip[n % len(drip) : n % len(drip) + 1])
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", server


@pytest.mark.parametrize(
    ("head", "drip"),
    [
        # A head sent a byte at a time: each byte restarts a per-read timeout.
        (b"", b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 60_000),
        # A chunk extension that never ends: bytes arrive, no body ever does.
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;", b"x"),
    ],
    ids=["head", "chunk-extension"],
)
def test_an_upstream_dribbling_bytes_cannot_outlast_the_read_timeout(
    head: bytes, drip: bytes
) -> None:
    async def scenario() -> None:
        url, server = await _dribbler(head, drip)
        client = UpstreamClient()
        started = time.monotonic()
        try:
            with pytest.raises(UpstreamTimeout):
                await client.call(Target(url, "m", timeout_s=0.3), "/chat/completions", CHAT)
            assert time.monotonic() - started < 2
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout):
                async for _ in client.stream(
                    Target(url, "m", timeout_s=0.3), "/chat/completions", CHAT
                ):
                    pass
            assert time.monotonic() - started < 2
        finally:
            await client.close()
            server.close()

    run(scenario)


def test_a_slow_but_progressing_stream_is_not_cut() -> None:
    async def scenario() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(6):
                writer.write(f"{len(SSE):x}\r\n".encode() + SSE + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)
            done = b"data: [DONE]\n\n"
            writer.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        client = UpstreamClient()
        try:
            events: list[object] = []
            async for batch in client.stream(
                Target(url, "m", timeout_s=0.3), "/chat/completions", CHAT
            ):
                events.extend(batch)
            assert len(events) == 6
        finally:
            await client.close()
            server.close()

    run(scenario)


def test_the_connection_bound_holds_across_base_urls() -> None:
    """`max_connections` bounds the transport, as aiohttp's connector did, not each URL.

    A tenant admin can publish versions under as many paths (or host names
    its wildcard admits) as it likes; a bound per base URL is no bound.
    """

    async def scenario() -> None:
        server = Server(lambda head, body: None if b"stall" in body else sized())
        url = await server.start()
        client = UpstreamClient(max_connections=2, connect_timeout_s=0.3)
        stalled = [
            asyncio.create_task(client.call(Target(f"{url}/{n}", "m"), "/x", {"stall": 1}))
            for n in range(2)
        ]
        try:
            await asyncio.sleep(0.2)
            with pytest.raises(UpstreamTimeout):
                await client.call(Target(f"{url}/other", "m"), "/x", {})
            assert server.connections == 2
        finally:
            for task in stalled:
                task.cancel()
            await asyncio.gather(*stalled, return_exceptions=True)
            await client.close()
            await server.stop()

    run(scenario)


def test_idle_connections_of_other_urls_make_room() -> None:
    """At the bound, an idle connection elsewhere is closed for a new one, not waited on."""

    async def scenario() -> None:
        server = Server(lambda head, body: sized())
        url = await server.start()
        client = UpstreamClient(max_connections=2, connect_timeout_s=0.3)
        try:
            for n in range(5):
                await client.call(Target(f"{url}/{n}", "m"), "/chat/completions", CHAT)
            native = client._native
            assert native is not None
            assert sum(len(p.idle) for p in native._pools.values()) <= 2
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("over", ["tcp", "unix"])
def test_a_peer_presenting_the_wrong_spiffe_id_is_disconnected(over: str) -> None:
    """The TLS session to a peer that failed the SPIFFE ID check is closed, not left open."""
    ca = InternalCA.create(TD)

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as directory:
            server = Server(lambda head, body: sized())
            evil = f"spiffe://{TD}/tenant/evil/worker/dep1"
            context = mtls_context_from_pem(ca.cert_pem, _svid(ca, evil), server=True)
            path = str(Path(directory) / "w.sock") if over == "unix" else ""
            url = await server.start(ssl_context=context, path=path)
            identity = RotatingIdentity(ca, f"spiffe://{TD}/gateway", server=False)
            client = UpstreamClient(identity=identity)
            target = Target(url, "m", peer_id=WORKER_ID, unix_socket=path or None)
            try:
                await call_once(client, target)  # the first TLS setup's own descriptors
                before = _open_fds()
                for _ in range(20):
                    await call_once(client, target)
                await asyncio.sleep(0.1)
                assert _open_fds() <= before
                await asyncio.wait_for(server.closed.wait(), 2)
                assert server.requests == []
            finally:
                await client.close()
                await server.stop()

    run(scenario)


async def call_once(client: UpstreamClient, target: Target) -> None:
    with pytest.raises(UpstreamError):
        await client.call(target, "/chat/completions", CHAT)


def test_failing_calls_leave_no_descriptor_open() -> None:
    """Refused, malformed, timed-out and cancelled calls: the descriptor count stays put."""

    async def scenario() -> None:
        bad = Server(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
        stall = Server(lambda head, body: None)
        bad_url, stall_url = await bad.start(), await stall.start()
        refused = socket.socket()
        refused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        refused_url = f"http://127.0.0.1:{refused.getsockname()[1]}/v1"
        client = UpstreamClient()
        try:
            before = _open_fds()
            for _ in range(10):
                await call_once(client, Target(bad_url, "m"))
                await call_once(client, Target(refused_url, "m"))
                with pytest.raises(UpstreamTimeout):
                    await client.call(Target(stall_url, "m", timeout_s=0.05), "/x", CHAT)
                task = asyncio.create_task(client.call(Target(stall_url, "m"), "/x", CHAT))
                await asyncio.sleep(0.02)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            await asyncio.sleep(0.2)
            assert _open_fds() <= before + 2  # the servers' own ends may close a tick late
        finally:
            await client.close()
            await bad.stop()
            await stall.stop()
            refused.close()

    run(scenario)


_BODY = f"{len(ANSWER):x}\r\n".encode() + ANSWER + b"\r\n"
_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
_TRAILERS = b"".join(b"X-%d: a\r\n" % n for n in range(100_000))


@pytest.mark.parametrize(
    "reply",
    [
        # Trailers are headers too: without a bound each one was kept, and
        # httptools joins one long value in memory before it is handed over.
        _CHUNKED
        + _BODY
        + b"0\r\n"
        + b"".join(b"X-%d: a\r\n" % n for n in range(100_000))
        + b"\r\n",
        _CHUNKED + _BODY + b"0\r\nX-T: " + b"a" * 1_000_000 + b"\r\n\r\n",
        # A chunk extension is not kept, but is no body either.
        _CHUNKED + b"1;" + b"x" * 1_000_000 + b"\r\n{\r\n0\r\n\r\n",
    ],
    ids=["many-trailers", "long-trailer", "long-extension"],
)
def test_bytes_that_are_no_body_are_bounded_after_the_head(reply: bytes) -> None:
    async def scenario() -> None:
        server = Server(lambda head, body: reply)
        url = await server.start()
        client = UpstreamClient()
        try:
            with pytest.raises(UpstreamError) as caught:
                await client.call(Target(url, "m"), "/chat/completions", CHAT)
            assert type(caught.value) is UpstreamError  # a 502, at once
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_trailers_do_not_replace_or_add_headers() -> None:
    async def scenario() -> None:
        reply = _CHUNKED.replace(b"\r\n\r\n", b"\r\nX-A: head\r\n\r\n") + _BODY
        reply += b"0\r\nX-A: trailer\r\nX-B: trailer\r\n\r\n"
        server = Server(lambda head, body: reply)
        url = await server.start()
        client = UpstreamClient()
        request = upstream_module.UpstreamRequest(
            url=url + "/x",
            headers={},
            body=b"{}",
            connect_timeout_s=1,
            read_timeout_s=1,
            target=Target(url, "m"),
        )
        assert client._native is not None
        try:
            async with client._native(request) as response:
                await response.read()
                assert response.headers.get("x-a") == "head"
                assert "x-b" not in response.headers
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_connections_are_not_shared_across_egress_policies() -> None:
    """Two tenants' policies (however alike) never share a connection; one policy's calls do."""

    async def scenario() -> None:
        server = Server(lambda head, body: sized())
        url = await server.start()
        a = EgressPolicy.tenant(parse_entries(["127.0.0.1/32"]))
        b = EgressPolicy.tenant(parse_entries(["127.0.0.1/32", "models.example.com"]))
        client = UpstreamClient()
        try:
            for policy in (a, b, a, b):
                await client.call(Target(url, "m", egress=policy), "/chat/completions", CHAT)
            assert server.connections == 2
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_the_host_header_is_the_urls_and_the_only_one() -> None:
    async def scenario() -> None:
        server = Server(lambda head, body: sized())
        url = await server.start()
        client = UpstreamClient()
        headers = {"Host": "evil.example", "Content-Length": "0", "Transfer-Encoding": "chunked"}
        try:
            await client.call(Target(url, "m", headers=headers), "/chat/completions", CHAT)
            head = server.requests[0][0]
            lines = head.split("\r\n")
            assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
            hosts = [line for line in lines if line.lower().startswith("host:")]
            assert hosts == [f"Host: {url.split('/')[2]}"]
            assert not any(line.lower().startswith("transfer-encoding") for line in lines)
            assert [line for line in lines if line.lower().startswith("content-length")] == [
                f"Content-Length: {len(server.requests[0][1])}"
            ]
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_a_caller_waiting_at_the_bound_gets_a_connection_that_goes_idle_elsewhere() -> None:
    """At the bound, a connection going back idle in another pool is closed for the waiter."""

    async def scenario() -> None:
        first, second = Server(lambda head, body: sized()), Server(lambda head, body: sized())
        first_url, second_url = await first.start(), await second.start()
        client = UpstreamClient(max_connections=1, connect_timeout_s=2)
        try:
            calls = [client.call(Target(url, "m"), "/x", CHAT) for url in (first_url, second_url)]
            await asyncio.wait_for(asyncio.gather(*calls), 1.5)  # not the 2 s connect timeout
            assert first.connections == second.connections == 1
        finally:
            await client.close()
            await first.stop()
            await second.stop()

    run(scenario)


def test_a_peer_check_that_fails_in_any_way_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not only a refused SPIFFE ID: whatever the check raises, the session is closed."""
    ca = InternalCA.create(TD)

    def broken(transport: object, check: object) -> None:
        raise ValueError("an unparsable certificate")

    monkeypatch.setattr(h1pool, "verify_peer", broken)

    async def scenario() -> None:
        server = Server(lambda head, body: sized())
        context = mtls_context_from_pem(ca.cert_pem, _svid(ca, WORKER_ID), server=True)
        url = await server.start(ssl_context=context)
        identity = RotatingIdentity(ca, f"spiffe://{TD}/gateway", server=False)
        client = UpstreamClient(identity=identity)
        try:
            with pytest.raises(ValueError):
                await client.call(Target(url, "m", peer_id=WORKER_ID), "/x", CHAT)
            await asyncio.wait_for(server.closed.wait(), 2)
        finally:
            await client.close()
            await server.stop()

    run(scenario)
