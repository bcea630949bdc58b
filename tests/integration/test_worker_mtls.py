"""mTLS end to end: gateway ↔ local workers, and gateway → an upstream that asks for it.

Each side checks the other's SPIFFE ID; a peer with a wrong, foreign, doubled,
CA-as-leaf or expired certificate is refused before it sees a request; the
worker admits the gateway's ID alone; rotation under traffic drops nothing.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bulkhead.crypto import EXPORT_KEY_MATERIAL
from bulkhead.errors import UpstreamError
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.tls import RotatingIdentity, mtls_context_from_pem, peer_certificate
from bulkhead.runtime import Target, UpstreamClient
from bulkhead.testing.fake_upstream import FakeUpstream
from tests.support.gateway import GatewayThread
from tests.support.postgres import free_port

TD = "bulkhead.test"
WORKER_ID = f"spiffe://{TD}/tenant/acme/worker/dep1"
GATEWAY_ID = f"spiffe://{TD}/gateway"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _forge(
    ca: InternalCA,
    uris: list[str],
    *,
    is_ca: bool = False,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> bytes:
    """Certificate and key PEM that the CA's recipes would never make, signed by its key."""
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    signer = ca._key._CertKey__key  # type: ignore[attr-defined]
    usage = x509.KeyUsage(True, False, False, False, False, is_ca, is_ca, False, False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "forged")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=1))
        .not_valid_after(not_after or now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key_pem


def _issued(ca: InternalCA, spiffe_id: str) -> bytes:
    svid = ca.issue(spiffe_id)
    return svid.cert_pem + svid.key.reveal_pem(EXPORT_KEY_MATERIAL)


def _the_ca_itself(ca: InternalCA) -> bytes:
    return ca.cert_pem + ca._key.reveal_pem(EXPORT_KEY_MATERIAL)


HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)
IMPOSTORS: dict[str, Callable[[InternalCA], bytes]] = {
    "wrong-id-for-the-service": lambda ca: _issued(ca, f"spiffe://{TD}/tenant/acme/worker/dep2"),
    "another-tenants-worker": lambda ca: _issued(ca, f"spiffe://{TD}/tenant/evil/worker/dep1"),
    "foreign-trust-domain": lambda ca: _forge(ca, ["spiffe://evil.test/tenant/acme/worker/dep1"]),
    "two-uri-sans": lambda ca: _forge(ca, [WORKER_ID, f"spiffe://{TD}/gateway"]),
    "ca-certificate-as-leaf": lambda ca: _forge(ca, [WORKER_ID], is_ca=True),
    "the-ca-itself": _the_ca_itself,
    "expired": lambda ca: _forge(
        ca, [WORKER_ID], not_before=HOUR_AGO - timedelta(hours=1), not_after=HOUR_AGO
    ),
}


async def _fake_worker(ca: InternalCA, pem: bytes, path: str) -> tuple[web.AppRunner, list[int]]:
    """A "worker" on a Unix socket presenting `pem`; it counts the requests that reach it."""
    hits: list[int] = []

    async def chat(request: web.Request) -> web.Response:
        hits.append(1)
        return web.json_response({"id": "x", "choices": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = mtls_context_from_pem(ca.cert_pem, pem, server=True)
    await web.UnixSite(runner, path, ssl_context=context).start()
    return runner, hits


def _call_fake_worker(ca: InternalCA, pem: bytes) -> tuple[BaseException | None, int]:
    async def main() -> tuple[BaseException | None, int]:
        with tempfile.TemporaryDirectory() as directory:
            path = str(Path(directory) / "w.sock")
            runner, hits = await _fake_worker(ca, pem, path)
            client = UpstreamClient(identity=RotatingIdentity(ca, GATEWAY_ID, server=False))
            target = Target("http://worker/v1", "m", unix_socket=path, peer_id=WORKER_ID)
            error: BaseException | None = None
            try:
                await client.call(target, "/chat/completions", CHAT)
            except Exception as exc:
                error = exc
            finally:
                await client.close()
                await runner.cleanup()
            return error, len(hits)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def ca() -> InternalCA:
    return InternalCA.create(TD)


def test_the_expected_worker_is_reached(ca: InternalCA) -> None:
    error, hits = _call_fake_worker(ca, _issued(ca, WORKER_ID))
    assert error is None and hits == 1


@pytest.mark.parametrize("case", sorted(IMPOSTORS))
def test_an_impostor_worker_never_sees_the_request(ca: InternalCA, case: str) -> None:
    error, hits = _call_fake_worker(ca, IMPOSTORS[case](ca))
    assert isinstance(error, UpstreamError), error  # a 502 to the caller
    assert hits == 0  # refused at the connection, before a byte of the request


# Real workers behind a real gateway ---------------------------------------------------------

LIFETIME_S = 4


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    env = {"BULKHEAD_SVID_LIFETIME_S": str(LIFETIME_S), "BULKHEAD_TRUST_DOMAIN": TD}
    data = tmp_path_factory.mktemp("mtls") / "data"
    gw = GatewayThread(data, None, workers=True, env=env).start()
    deadline = time.monotonic() + 180
    while not (gw.app.workers.status() and all(w["ready"] for w in gw.app.workers.status())):
        assert time.monotonic() < deadline, gw.app.workers.status()
        time.sleep(0.2)
    yield gw
    gw.stop()


def _chat_worker(gw: GatewayThread) -> dict[str, Any]:
    return next(w for w in gw.app.workers.status() if w["kind"] == "demo-chat")


def _gateway_chat(gw: GatewayThread) -> int:
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    return gw.call("POST", "/v1/chat/completions", gw.demo_key, body).status


def test_a_real_worker_serves_chat_over_mtls(served: GatewayThread) -> None:
    worker = _chat_worker(served)
    assert worker["spiffe_id"] == f"spiffe://{TD}/tenant/_shared/worker/{worker['deployment']}"
    assert _gateway_chat(served) == 200


def _worker_target(gw: GatewayThread) -> Target:
    return gw.app.workers.target(str(_chat_worker(gw)["deployment"]), 30)


def test_the_worker_admits_the_gateway_alone(served: GatewayThread) -> None:
    ca = served.app.ca
    assert ca is not None
    target = _worker_target(served)

    async def as_client(spiffe_id: str) -> None:
        client = UpstreamClient(identity=RotatingIdentity(ca, spiffe_id, server=False))
        try:
            await client.call(target, "/chat/completions", CHAT)
        finally:
            await client.close()

    asyncio.run(as_client(GATEWAY_ID))  # the control: the gateway's ID, token kept
    for intruder in (f"spiffe://{TD}/tenant/_shared/worker/x", f"spiffe://{TD}/tenant/a/client/b"):
        with pytest.raises(UpstreamError):  # the worker's 403, a 502 outside
            asyncio.run(as_client(intruder))

    async def without_certificate() -> bytes:
        bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        bare.check_hostname = False
        bare.load_verify_locations(cadata=ca.cert_pem.decode())
        assert target.unix_socket is not None
        reader, writer = await asyncio.open_unix_connection(
            target.unix_socket, ssl=bare, server_hostname=""
        )
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: w\r\n" + _auth(target) + b"\r\n")
        try:
            return await reader.read()
        except (ssl.SSLError, ConnectionError):
            return b""
        finally:
            writer.close()

    assert asyncio.run(without_certificate()) == b""


def _auth(target: Target) -> bytes:
    return f"authorization: {target.headers['authorization']}\r\n".encode()


@pytest.mark.serial
def test_rotation_under_traffic_drops_nothing(served: GatewayThread) -> None:
    identity = served.app.upstreams.identity
    assert identity is not None
    before = _chat_worker(served)["rotations"]
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            statuses.append(_gateway_chat(served))

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for thread in threads:
        thread.start()
    serials = asyncio.run(_probe_worker_certificates(served, identity, seconds=3 * LIFETIME_S))
    stop.set()
    for thread in threads:
        thread.join(30)
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert _chat_worker(served)["rotations"] - before >= 4
    assert identity.rotations >= 2
    assert len(serials) >= 4  # fresh handshakes saw the worker's certificate change


async def _probe_worker_certificates(
    gw: GatewayThread, identity: RotatingIdentity, seconds: float
) -> set[int]:
    """Fresh connections to the worker (as the gateway) during the traffic."""
    target, serials = _worker_target(gw), set()
    assert target.unix_socket is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _, writer = await asyncio.open_unix_connection(
            target.unix_socket, ssl=identity.context(), server_hostname=""
        )
        cert = peer_certificate(writer.get_extra_info("ssl_object"))
        writer.close()
        assert cert is not None
        identity.ca.verify_peer(cert, lambda sid: str(sid) == target.peer_id)
        serials.add(cert.serial_number)
        await asyncio.sleep(0.25)
    return serials


# An upstream reached over mTLS --------------------------------------------------------------


class TlsUpstream:
    """The fake upstream behind a listener that requires a client certificate of the CA."""

    def __init__(self, ca: InternalCA, spiffe_id: str):
        self.fake, self.port = FakeUpstream(), free_port()
        self.identity = RotatingIdentity(ca, spiffe_id, server=True)
        self.url = f"https://127.0.0.1:{self.port}/v1"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.fake.app(), access_log=None)
        self._loop.run_until_complete(runner.setup())
        context = self.identity.server_context()
        site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=context)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> TlsUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_an_upstream_over_mtls_and_a_wrong_server_id(served: GatewayThread) -> None:
    ca = served.app.ca
    assert ca is not None
    upstream_id = f"spiffe://{TD}/tenant/_shared/upstream/fake"
    with TlsUpstream(ca, upstream_id) as upstream:
        served.model("up-mtls", upstream.url, grant=("demo",), upstream_peer_id=upstream_id)
        other = f"spiffe://{TD}/tenant/_shared/upstream/other"
        served.model("up-wrong", upstream.url, grant=("demo",), upstream_peer_id=other)
        served.model("up-plain", upstream.url, grant=("demo",))
        _wait_for_catalog(served, "up-plain")
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        ok = served.call(
            "POST", "/v1/chat/completions", served.demo_key, {**body, "model": "up-mtls"}
        )
        assert ok.status == 200, ok.body
        seen = upstream.fake.requests
        for model in ("up-wrong", "up-plain"):
            refused = served.call(
                "POST", "/v1/chat/completions", served.demo_key, {**body, "model": model}
            )
            assert refused.status == 502, refused.body
        assert upstream.fake.requests == seen  # neither reached the upstream's handler
    bad = served.admin(
        "POST",
        "/admin/v1/models",
        {"name": "up-http", "upstream": "http://127.0.0.1:1/v1", "upstream_peer_id": upstream_id},
    )
    assert bad.status == 400


def _wait_for_catalog(gw: GatewayThread, model: str) -> None:
    deadline = time.monotonic() + 10
    while model not in {m["id"] for m in gw.call("GET", "/v1/models", gw.demo_key).body["data"]}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
