"""The upstream client's own HTTP/1.1 transport (`runtime/h1.py`, `runtime/h1pool.py`).

Raw asyncio servers on 127.0.0.1 (and a Unix socket) write exactly the bytes
each case needs: keep-alive, chunked, close-delimited and HTTP/1.0 answers,
oversize and malformed ones, stalls and cuts; TLS with an untrusted and a
trusted certificate, and mutual TLS with the internal CA's SVIDs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bulkhead.crypto import EXPORT_KEY_MATERIAL
from bulkhead.errors import UpstreamError, UpstreamTimeout
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.tls import RotatingIdentity, mtls_context_from_pem
from bulkhead.runtime import h1, h1pool
from bulkhead.runtime import upstream as upstream_module
from bulkhead.runtime.h1 import encode_request
from bulkhead.runtime.upstream import Target, UpstreamClient

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
ANSWER = orjson.dumps({"choices": [{"index": 0, "message": {"content": "ok"}}]})
SSE = b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": "a"}}]}) + b"\n\n"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def sized(body: bytes = ANSWER, status: str = "200 OK", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def chunked(*pieces: bytes, end: bool = True) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for piece in pieces:
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + (b"0\r\n\r\n" if end else b"")


class Server:
    """A raw server: `answer(request_head, body)` gives the bytes (None: read on, keep open)."""

    def __init__(self, answer: Callable[[str, bytes], bytes | None], *, close: bool = False):
        self.answer = answer
        self.close_after = close
        self.connections = 0
        self.requests: list[tuple[str, bytes]] = []
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head, body = await read_request(reader)
                self.requests.append((head, body))
                data = self.answer(head, body)
                if data is None:  # stall: wait for the client to go away
                    await reader.read()
                    break
                writer.write(data)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            writer.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None, path: str = "") -> str:
        if path:
            self.server = await asyncio.start_unix_server(self.handle, path, ssl=ssl_context)
            return "http://worker/v1"
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """On asyncio's loop, then on uvloop's (the gateway's), whose transports differ."""
    for factory in (asyncio.new_event_loop, uvloop.new_event_loop):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(asyncio.wait_for(scenario(), 20))


async def call(client: UpstreamClient, url: str, **target: Any) -> dict[str, Any]:
    return await client.call(Target(url, "m", **target), "/chat/completions", CHAT)


async def stream(client: UpstreamClient, url: str, **target: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async for batch in client.stream(Target(url, "m", **target), "/chat/completions", CHAT):
        events.extend(batch)
    return events


def test_a_connection_is_reused_after_a_complete_answer() -> None:
    async def scenario() -> None:
        server = Server(lambda head, body: sized())
        url = await server.start()
        client = UpstreamClient()
        try:
            for _ in range(3):
                assert (await call(client, url))["choices"]
            assert server.connections == 1
            head, body = server.requests[0]
            assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
            assert orjson.loads(body) == CHAT
            lowered = head.lower()
            assert "accept-encoding" not in lowered and "user-agent" not in lowered
            assert f"host: {url.split('/')[2]}\r\n" in lowered
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_chunked_answers_and_streams_are_read_and_pooled() -> None:
    async def scenario() -> None:
        def answer(head: str, body: bytes) -> bytes:
            if "stream" in head:
                return chunked(SSE, SSE + b"data: [DONE]\n\n")
            return chunked(ANSWER[:5], ANSWER[5:])

        server = Server(answer)
        url = await server.start()
        client = UpstreamClient()
        try:
            assert (await call(client, url))["choices"]
            assert (await call(client, url))["choices"]
            assert server.connections == 1
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_close_delimited_and_http10_answers_are_read_and_never_reused() -> None:
    async def scenario() -> None:
        replies = [
            b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + ANSWER,
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + ANSWER,
            sized(extra="Connection: close\r\n"),
            b"HTTP/1.0 200 OK\r\n" + sized()[len(b"HTTP/1.1 200 OK\r\n") :],
        ]
        server = Server(lambda head, body: replies[len(server.requests) - 1], close=True)
        url = await server.start()
        client = UpstreamClient()
        try:
            for _ in replies:
                assert (await call(client, url))["choices"]
            assert server.connections == len(replies)
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_oversize_answers_are_refused_while_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "MAX_RESPONSE_BYTES", 100_000)
    monkeypatch.setattr(upstream_module, "MAX_EVENT_BYTES", 100_000)

    async def scenario() -> None:
        huge = b"x" * 1_000_000
        replies = {
            "declared": b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + huge,
            "chunked": chunked(*([b" " * 50_000] * 20)),
            "close": b"HTTP/1.1 200 OK\r\n\r\n" + huge,
        }
        for name, reply in replies.items():
            server = Server(_always(reply), close=True)
            url = await server.start()
            client = UpstreamClient()
            try:
                with pytest.raises(UpstreamError) as caught:
                    await call(client, url)
                assert "too large" in caught.value.message, name
                with pytest.raises(UpstreamError):
                    await stream(client, url)  # one endless line: the event bound
            finally:
                await client.close()
                await server.stop()

    run(scenario)


def _always(reply: bytes) -> Callable[[str, bytes], bytes]:
    return lambda head, body: reply


def test_unread_body_pauses_the_socket() -> None:
    async def scenario() -> None:
        async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            try:
                while True:
                    writer.write(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
                    await writer.drain()
            except ConnectionError:
                pass

        server = await asyncio.start_server(endless, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = UpstreamClient()
        target = Target(f"http://127.0.0.1:{port}/v1", "m")
        try:
            async with client._request(target, "/x", b"{}") as response:
                await asyncio.sleep(0.3)  # the caller reads nothing meanwhile
                # Paused past the high-water mark: one socket read more at most.
                assert response.buffered < h1.HIGH_WATER + 1024 * 1024
        finally:
            await client.close()
            server.close()

    run(scenario)


def test_a_stalled_upstream_times_out() -> None:
    async def scenario() -> None:
        server = Server(lambda head, body: None)
        url = await server.start()
        client = UpstreamClient()
        try:
            with pytest.raises(UpstreamTimeout):
                await call(client, url, timeout_s=0.2)
            await asyncio.wait_for(server.closed.wait(), 2)  # the connection was closed
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_a_stall_mid_body_times_out_and_closes() -> None:
    async def scenario() -> None:
        async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(chunked(SSE, end=False))
            await reader.read()  # until the client closes
            closed.set()

        closed = asyncio.Event()
        server = await asyncio.start_server(half, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        client = UpstreamClient()
        try:
            with pytest.raises(UpstreamTimeout):
                await stream(client, url, timeout_s=0.2)
            await asyncio.wait_for(closed.wait(), 2)
        finally:
            await client.close()
            server.close()

    run(scenario)


def test_a_full_pool_makes_a_call_wait_then_time_out() -> None:
    async def scenario() -> None:
        server = Server(lambda head, body: None if b"stall" in body else sized())
        url = await server.start()
        client = UpstreamClient(max_connections=1, connect_timeout_s=0.2)
        target = Target(url, "m", timeout_s=5)
        try:
            stalled = asyncio.create_task(client.call(target, "/x", {"stall": 1}))
            await asyncio.sleep(0.1)
            with pytest.raises(UpstreamTimeout):
                await client.call(target, "/chat/completions", CHAT)
            stalled.cancel()
            await asyncio.gather(stalled, return_exceptions=True)
            assert (await client.call(target, "/chat/completions", CHAT))["choices"]
            assert server.connections == 2
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_a_bounded_pool_serves_many_callers_in_turn() -> None:
    async def scenario() -> None:
        server = Server(lambda head, body: sized())
        url = await server.start()
        client = UpstreamClient(max_connections=2)
        try:
            answers = await asyncio.gather(*(call(client, url) for _ in range(20)))
            assert len(answers) == 20 and server.connections <= 2
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_idle_connections_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h1pool, "KEEPALIVE_S", 0.2)

    async def scenario() -> None:
        server = Server(lambda head, body: sized())
        url = await server.start()
        client = UpstreamClient()
        try:
            await call(client, url)
            await asyncio.wait_for(server.closed.wait(), 2)  # the sweep closed it
            await call(client, url)
            assert server.connections == 2
        finally:
            await client.close()
            await server.stop()

    run(scenario)


@pytest.mark.parametrize(
    "reply",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" + sized(),
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        b"",
    ],
)
def test_malformed_answers_are_502(reply: bytes) -> None:
    async def scenario() -> None:
        server = Server(lambda head, body: reply, close=True)
        url = await server.start()
        client = UpstreamClient()
        try:
            with pytest.raises(UpstreamError) as caught:
                await call(client, url)
            assert type(caught.value) is UpstreamError  # a 502, not a 504
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_bytes_after_the_answer_break_the_connection() -> None:
    async def scenario() -> None:
        server = Server(lambda head, body: sized() + b"HTTP/1.1 200 OK\r\n")
        url = await server.start()
        client = UpstreamClient()
        try:
            await call(client, url)
            await call(client, url)
            assert server.connections == 2
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_a_cut_mid_stream_is_502_and_a_cancelled_stream_closes_the_connection() -> None:
    async def scenario() -> None:
        cut = Server(lambda head, body: chunked(SSE, end=False), close=True)
        url = await cut.start()
        client = UpstreamClient()
        try:
            with pytest.raises(UpstreamError) as caught:
                await stream(client, url)
            assert type(caught.value) is UpstreamError

            never_ends = await _endless_stream()
            batches = client.stream(Target(never_ends[0], "m"), "/chat/completions", CHAT)
            assert await anext(batches)
            await batches.aclose()  # the client went away
            await asyncio.wait_for(never_ends[1].wait(), 2)
        finally:
            await client.close()
            await cut.stop()

    run(scenario)


async def _endless_stream() -> tuple[str, asyncio.Event]:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked(SSE, end=False))
        await reader.read()
        closed.set()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", closed


@pytest.mark.parametrize(
    "headers",
    [
        {"x-a": "1\r\nX-Injected: yes"},
        {"x-a": "1\nx"},
        {"x-a": "a\x00"},
        {"x a": "1"},
        {"x\r\n": "1"},
    ],
)
def test_header_injection_is_refused_before_sending(headers: dict[str, str]) -> None:
    async def scenario() -> None:
        server = Server(lambda head, body: sized())
        url = await server.start()
        client = UpstreamClient()
        try:
            with pytest.raises(UpstreamError):
                await call(client, url, headers=headers)
            assert server.connections == 0
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_encode_request_refuses_a_path_with_controls() -> None:
    with pytest.raises(UpstreamError):
        encode_request("POST", "/v1 HTTP/1.1\r\nX: y", "h", {}, b"")
    data = encode_request("POST", "/v1/x", "h:1", {"Authorization": "Bearer t"}, b"{}")
    assert data == b"POST /v1/x HTTP/1.1\r\nHost: h:1\r\nAuthorization: Bearer t\r\n" + (
        b"Content-Length: 2\r\n\r\n{}"
    )


def test_a_unix_socket_worker_gets_its_token() -> None:
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as directory:
            server = Server(lambda head, body: sized())
            url = await server.start(path=str(Path(directory) / "w.sock"))
            client = UpstreamClient()
            target = {"unix_socket": str(Path(directory) / "w.sock")}
            try:
                await call(client, url, headers={"authorization": "Bearer tok"}, **target)
                await call(client, url, headers={"authorization": "Bearer tok"}, **target)
                assert "authorization: Bearer tok\r\n" in server.requests[0][0]
                assert server.connections == 1
            finally:
                await client.close()
                await server.stop()

    run(scenario)


# TLS ------------------------------------------------------------------------------------------


def _self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _server_context(cert: bytes, key: bytes, directory: str) -> ssl.SSLContext:
    (Path(directory) / "c.pem").write_bytes(cert + key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(Path(directory) / "c.pem"))
    return context


def test_https_verifies_the_server_certificate() -> None:
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as directory:
            cert, key = _self_signed("127.0.0.1")
            server = Server(lambda head, body: sized())
            url = await server.start(ssl_context=_server_context(cert, key, directory))
            client = UpstreamClient()
            try:
                with pytest.raises(UpstreamError):  # not signed by a CA the system trusts
                    await call(client, url)
                assert server.requests == []
                assert client._native is not None
                trusting = ssl.create_default_context(cadata=cert.decode())
                client._native._verified = trusting
                assert (await call(client, url))["choices"]
                # The same certificate for the wrong name is refused too.
                client._native._verified = ssl.create_default_context(cadata=cert.decode())
                other = url.replace("127.0.0.1", "localhost")
                with pytest.raises(UpstreamError):
                    await client.call(Target(other, "m"), "/chat/completions", CHAT)
                assert len(server.requests) == 1
            finally:
                await client.close()
                await server.stop()

    run(scenario)


TD = "bulkhead.test"
WORKER_ID = f"spiffe://{TD}/tenant/acme/worker/dep1"


@pytest.fixture(scope="module")
def ca() -> InternalCA:
    return InternalCA.create(TD)


def _svid(ca: InternalCA, spiffe_id: str) -> bytes:
    svid = ca.issue(spiffe_id)
    return svid.cert_pem + svid.key.reveal_pem(EXPORT_KEY_MATERIAL)


@pytest.mark.parametrize("over", ["tcp", "unix"])
def test_mutual_tls_presents_the_svid_and_checks_the_peer_id(ca: InternalCA, over: str) -> None:
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as directory:
            seen: list[bytes | None] = []
            for peer in (WORKER_ID, f"spiffe://{TD}/tenant/evil/worker/dep1"):
                server = Server(lambda head, body: sized())
                context = mtls_context_from_pem(ca.cert_pem, _svid(ca, peer), server=True)
                path = str(Path(directory) / f"{len(seen)}.sock") if over == "unix" else ""
                url = await server.start(ssl_context=context, path=path)
                identity = RotatingIdentity(ca, f"spiffe://{TD}/gateway", server=False)
                client = UpstreamClient(identity=identity)
                target = {"peer_id": WORKER_ID, "unix_socket": path or None}
                try:
                    await call(client, url, **target)
                    await call(client, url, **target)
                    seen.append(b"ok")
                    assert server.connections == 1
                except UpstreamError:
                    seen.append(None)
                    assert server.requests == []
                finally:
                    await client.close()
                    await server.stop()
            assert seen == [b"ok", None]

    run(scenario)


def test_a_stream_whose_end_comes_after_done_is_read_to_it_and_pooled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(h1pool, "LINGER_S", 1.0)

    async def scenario() -> None:
        closed = asyncio.Event()
        connections: list[int] = []

        async def late_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(1)
            try:
                while True:
                    head, _ = await read_request(reader)
                    writer.write(chunked(SSE + b"data: [DONE]\n\n", end=False))
                    await asyncio.sleep(0.05)
                    if "never" not in head:
                        writer.write(b"0\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                closed.set()

        server = await asyncio.start_server(late_end, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        client = UpstreamClient()
        try:
            assert len(await stream(client, url)) == 1
            assert client._native is not None
            for _ in range(200):  # until the end arrived and the connection is idle
                if any(pool.idle for pool in client._native._pools.values()):
                    break
                await asyncio.sleep(0.01)
            assert len(await stream(client, url)) == 1
            assert len(connections) == 1
            # An end that never comes: the connection is closed once the wait gives up.
            assert len(await stream(client, url, headers={"x-never": "1"})) == 1
            await asyncio.wait_for(closed.wait(), 2)
        finally:
            await client.close()
            server.close()

    run(scenario)


def test_pools_without_connections_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h1pool, "MAX_POOLS", 2)

    async def scenario() -> None:
        server = Server(lambda head, body: sized(extra="Connection: close\r\n"), close=True)
        url = await server.start()
        client = UpstreamClient()
        assert client._native is not None
        try:
            for n in range(5):  # five URLs: five pools, none keeping a connection
                await call(client, f"{url}{n}")
                assert len(client._native._pools) <= 2
        finally:
            await client.close()
            await server.stop()

    run(scenario)


def test_a_cancelled_call_closes_its_connection() -> None:
    async def scenario() -> None:
        never_ends, closed = await _endless_stream()
        client = UpstreamClient()
        try:
            task = asyncio.create_task(call(client, never_ends))
            await asyncio.sleep(0.2)  # the head and a part of the body have arrived
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(closed.wait(), 2)
        finally:
            await client.close()

    run(scenario)
