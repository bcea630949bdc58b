"""mTLS between workloads: both sides check the peer's SPIFFE ID; rotation drops nothing."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bulkhead.crypto import Kek, LocalKms, MemoryKekStore
from bulkhead.identity.ca import InternalCA
from bulkhead.identity.spiffe import PeerRejected
from bulkhead.identity.tls import RotatingIdentity, peer_certificate
from bulkhead.store import Database, upgrade
from bulkhead.store.blobs import BlobStore
from bulkhead.store.ca_keys import CaKeyring
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.platform_keys import PlatformKeyStore
from bulkhead.store.sealed import SealedColumns
from tests.support.postgres import free_port

TD = "bulkhead.test"
SERVER_ID = f"spiffe://{TD}/tenant/acme/worker/dep1"
CLIENT_ID = f"spiffe://{TD}/gateway"
SEEN = web.AppKey("seen", set[int])


async def _serve(ca: InternalCA, identity: RotatingIdentity, port: int) -> web.AppRunner:
    seen: set[int] = set()

    async def handle(request: web.Request) -> web.Response:
        cert = peer_certificate(request.transport.get_extra_info("ssl_object"))  # type: ignore[union-attr]
        assert cert is not None
        ca.verify_peer(cert, "gateway")  # the worker authorizes its caller
        seen.add(cert.serial_number)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", handle)
    app[SEEN] = seen
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=identity.server_context()).start()
    return runner


async def _client_loop(
    ca: InternalCA, identity: RotatingIdentity, port: int, seconds: float
) -> tuple[int, list[str]]:
    done, failures = 0, []
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            nonlocal done
            async with session.get(f"https://127.0.0.1:{port}/", ssl=identity.context()) as r:
                assert r.status == 200
                await r.read()
            done += 1

        async def check_server() -> None:
            # The gateway's side: the server's certificate must name the expected worker.
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=identity.context())
            cert = peer_certificate(writer.get_extra_info("ssl_object"))
            writer.close()
            assert cert is not None
            ca.verify_peer(cert, "tenant/acme/worker/dep1")

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = [*(one() for _ in range(8)), check_server()]
            results = await asyncio.gather(*batch, return_exceptions=True)
            failures += [repr(e) for e in results if isinstance(e, BaseException)]
    return done, failures


@pytest.mark.serial
def test_rotation_under_traffic_drops_nothing() -> None:
    ca = InternalCA.create(TD)
    # X.509 times have whole seconds, so a short lifetime loses up to one; keep a margin
    # so that a loaded CI machine cannot push a handshake past a certificate's end.
    lifetime = timedelta(seconds=4)
    server = RotatingIdentity(ca, SERVER_ID, server=True, lifetime=lifetime)
    client = RotatingIdentity(ca, CLIENT_ID, server=False, lifetime=lifetime)
    port = free_port()

    async def main() -> tuple[int, list[str], int]:
        runner = await _serve(ca, server, port)
        try:
            done, failures = await _client_loop(ca, client, port, seconds=9.0)
        finally:
            seen = len(runner.app[SEEN])
            await runner.cleanup()
        return done, failures, seen

    done, failures, seen = asyncio.run(main())
    assert failures == []
    assert done > 100
    assert server.rotations >= 3 and client.rotations >= 3
    assert seen >= 4  # the server saw the client's certificates change


def test_wrong_peer_is_refused_over_mtls() -> None:
    ca = InternalCA.create(TD)
    server = RotatingIdentity(ca, SERVER_ID, server=True)
    intruder = RotatingIdentity(ca, f"spiffe://{TD}/tenant/evil/client/x", server=False)
    stranger = RotatingIdentity(InternalCA.create(TD), CLIENT_ID, server=False)
    port = free_port()

    async def main() -> None:
        runner = await _serve(ca, server, port)
        try:
            async with aiohttp.ClientSession() as session:
                url = f"https://127.0.0.1:{port}/"
                async with session.get(url, ssl=intruder.context()) as r:
                    assert r.status == 500  # PeerRejected in the handler: refused
                # Another CA's certificate: the handshake itself fails.
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(url, ssl=stranger.context()) as r:
                        await r.read()
                # No client certificate at all: the handshake fails.
                bare = ssl.create_default_context(cadata=ca.cert_pem.decode())
                bare.check_hostname = False
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(url, ssl=bare) as r:
                        await r.read()
        finally:
            await runner.cleanup()

    asyncio.run(main())
    with pytest.raises(PeerRejected):
        ca.verify_peer(intruder.svid.cert, "gateway")


# The CA itself rotates under the same traffic -----------------------------------------------


def _replica(db: Database, kms: LocalKms, blobs: Path) -> CaKeyring:
    """A gateway replica's view of the CA: its own keyring on the shared database."""
    keyring = TenantKeyring(kms, BlobStore(blobs), holders=(SealedColumns(db),))
    store = PlatformKeyStore(db, kms, keyring.ensure)
    return CaKeyring(store, TD, activation=timedelta(seconds=3))


async def _poll(replicas: list[CaKeyring], stop: asyncio.Event) -> None:
    """What each replica's catalog poll does: pick up a CA version another one stored."""
    while not stop.is_set():
        for replica in replicas:
            await asyncio.to_thread(replica.refresh)
        await asyncio.sleep(0.5)


@pytest.mark.serial
def test_ca_rotation_across_replicas_under_traffic_drops_nothing(tmp_path: Path) -> None:
    """Server and client on two replicas; one rotates the CA, the other learns it by polling.

    The new version is trusted on both before it issues (activation 3 s, polls
    every 0.5 s), both move onto it, and once every leaf of the old one has
    expired it leaves the bundle; handshakes never fail on the way.
    """
    db = Database(f"sqlite:///{tmp_path / 'ca.db'}")
    upgrade(db, None)
    kms = LocalKms(MemoryKekStore(), Kek.generate())
    one, two = _replica(db, kms, tmp_path / "b"), _replica(db, kms, tmp_path / "b")
    server_ca, client_ca = one.load(), two.load()
    lifetime = timedelta(seconds=4)
    server = RotatingIdentity(server_ca, SERVER_ID, server=True, lifetime=lifetime)
    client = RotatingIdentity(client_ca, CLIENT_ID, server=False, lifetime=lifetime)
    old, port = server_ca.cert.subject, free_port()

    async def main() -> tuple[int, list[str], int]:
        runner, stop = await _serve(server_ca, server, port), asyncio.Event()
        poller = asyncio.create_task(_poll([one, two], stop))
        traffic = asyncio.create_task(_client_loop(client_ca, client, port, seconds=16.0))
        try:
            await asyncio.sleep(1)
            await asyncio.to_thread(one.rotate)
            await asyncio.sleep(3 + 2 * 4 + 0.5)  # activation, then every old leaf expired
            bound = one.rows()[0].trusted_until
            assert bound is not None
            await asyncio.to_thread(one.prune, bound + timedelta(seconds=1))
            done, failures = await traffic
        finally:
            stop.set()
            await poller
            seen = len(runner.app[SEEN])
            await runner.cleanup()
        return done, failures, seen

    done, failures, seen = asyncio.run(main())
    print(f"\nCA rotation across replicas: {done} requests, {len(failures)} failed")
    assert failures == []
    assert done > 100
    for ca in (server_ca, client_ca):
        assert [c.subject for c in ca.certs] == [ca.cert.subject] and ca.cert.subject != old
    assert server.svid.cert.issuer == client.svid.cert.issuer == server_ca.cert.subject
    assert seen >= 4
    db.dispose()
