"""Every IdP fetch holds to the IdP egress policy: a tenant's JWKS URL never reaches inside.

The attacks, on the API path's token validation: a JWKS URL on 127.0.0.1 (where the
gateway's own ports are) without the operator's allowance, the cloud metadata address, a
private 10.x address, `localhost`, and a name the tenant's DNS points at 127.0.0.1.  Each
is refused before a byte is sent (the loopback server counts its requests), the token
gets the one answer for a token that does not verify, and the operator's log says why
without the URL's path or query.  With the allowance the loopback IdP works.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkhead.errors import Unauthenticated
from bulkhead.identity import OidcValidator
from bulkhead.identity.idp_fetch import IdpFetcher, IdpUnreachable, idp_egress
from bulkhead.identity.jwks import INVALID, MAX_JWKS_BYTES
from tests.unit.identity.test_oidc import AUDIENCE, ISSUER, JwksServer, claims

REBOUND = "idp.attacker.test"
SECRET = "s3cret-in-the-query"


class Pinned(AbstractResolver):
    """The tenant's DNS: `REBOUND` resolves to 127.0.0.1; other names as usual."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != REBOUND:  # the usual resolver, made on the loop the fetch runs on
            return await DefaultResolver().resolve(host, port, family)
        found: ResolveResult = {
            "hostname": host,
            "host": "127.0.0.1",
            "port": port,
            "family": socket.AF_INET,
            "proto": 0,
            "flags": socket.AI_NUMERICHOST,
        }
        return [found]

    async def close(self) -> None:
        pass


ATTACKS: dict[str, Callable[[str], str]] = {
    "loopback": lambda url: url,
    "localhost": lambda url: url.replace("127.0.0.1", "localhost"),
    "a name resolving to loopback": lambda url: url.replace("127.0.0.1", REBOUND),
    "metadata": lambda url: "https://169.254.169.254/latest/meta-data/jwks.json",
    "private": lambda url: "https://10.0.0.5/jwks.json",
}


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def server(key: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    srv = JwksServer()
    srv.publish("k1", key.public_key())
    yield srv
    srv.close()


def idp_at(url: str) -> Any:
    from bulkhead.domain import ClaimMapping, IdpConfig

    mapping = ClaimMapping.from_json({"principal": "email", "roles": "groups"})
    return IdpConfig(
        tenant_id="ten_a", issuer=ISSUER, audience=AUDIENCE, jwks_url=url, mapping=mapping
    )


def validator(cidrs: tuple[str, ...] = ()) -> OidcValidator:
    fetcher = IdpFetcher(idp_egress(cidrs), resolver=Pinned(), timeout_s=3.0)
    return OidcValidator(fetch=fetcher.fetch, min_refresh_s=0.0)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_jwks_url_at_an_internal_address_is_never_fetched(
    attack: str, server: JwksServer, key: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = ATTACKS[attack](server.url) + "?token=" + SECRET
    token = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k1"})
    caplog.set_level(logging.WARNING, logger="bulkhead.identity")
    started = time.monotonic()
    with pytest.raises(Unauthenticated) as caught:
        validator().validate(idp_at(url), token)
    assert caught.value.message == INVALID and caught.value.code == "invalid_token"
    assert server.hits == 0
    # Refused by the policy, not timed out trying: nothing was opened toward the address.
    assert time.monotonic() - started < 2.5
    logged = [r.getMessage() for r in caplog.records if r.name == "bulkhead.identity"]
    assert logged and all("refused" in line for line in logged), logged
    assert not any(SECRET in line or "jwks.json" in line for line in logged), logged


@pytest.mark.parametrize("attack", ["loopback", "a name resolving to loopback"])
def test_the_operators_allowance_reaches_a_loopback_idp(
    attack: str, server: JwksServer, key: Any
) -> None:
    token = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k1"})
    got = validator(("127.0.0.1/32",)).validate(idp_at(ATTACKS[attack](server.url)), token)
    assert got["email"] == "alice@acme.test" and server.hits == 1


def test_the_allowance_admits_its_cidr_only() -> None:
    fetch = IdpFetcher(idp_egress(("127.0.0.1/32",))).fetch
    for url in ("https://169.254.169.254/jwks", "https://10.0.0.5/jwks", "http://[::1]:9/j"):
        with pytest.raises(IdpUnreachable):
            fetch(url)


def test_the_body_read_is_bounded(server: JwksServer) -> None:
    server.keys = [{"kid": "big", "pad": "x" * (2 * MAX_JWKS_BYTES)}]
    got = IdpFetcher(idp_egress(("127.0.0.1/32",))).fetch(server.url)
    assert len(got) == MAX_JWKS_BYTES + 1


def test_a_bound_fetcher_fetches_on_the_applications_loop(server: JwksServer) -> None:
    """As in the gateway: bound at start-up, called from a validator's thread."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    fetcher = IdpFetcher(idp_egress(("127.0.0.1/32",)))
    fetcher.bind(loop)
    try:
        assert b'"kid": "k1"' in fetcher.fetch(server.url)
        blocking = asyncio.run_coroutine_threadsafe(_fetch_on_loop(fetcher, server.url), loop)
        with pytest.raises(IdpUnreachable):  # waiting on its own loop would deadlock it
            blocking.result(10)
        assert server.hits == 1
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


async def _fetch_on_loop(fetcher: IdpFetcher, url: str) -> bytes:
    return fetcher.fetch(url)


@pytest.mark.serial
def test_the_deadline_is_on_the_whole_fetch() -> None:
    """An IdP that sends a byte at a time, forever: the fetch ends at its deadline."""
    stop = threading.Event()

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            while not stop.wait(0.2):
                self.wfile.write(b" ")
                self.wfile.flush()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(IdpUnreachable):
            fetcher = IdpFetcher(idp_egress(("127.0.0.1/32",)), timeout_s=1.5)
            fetcher.fetch(f"http://127.0.0.1:{server.server_address[1]}/jwks.json")
        assert time.monotonic() - started < 4.0
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
