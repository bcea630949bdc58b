"""The console's OIDC fetches hold to the IdP egress policy: a tenant's IdP URL must never
make the gateway reach a platform-internal address.

Public addresses only, unless the operator names a CIDR (`BULKHEAD_IDP_ALLOW_CIDRS`); the
tests' 127.0.0.1 provider is reached only through that allowance.  The refusal happens
before a byte is sent (a real server on 127.0.0.1 counts the requests it got).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any, cast

import pytest

from bulkhead.console.oidc import OidcSignIn
from bulkhead.errors import Unauthenticated
from bulkhead.identity.idp_fetch import IdpFetcher, idp_egress
from bulkhead.runtime.egress import EgressRefused
from tests.unit.identity.test_oidc import JwksServer

INTERNAL = ("127.0.0.1", "::1", "10.0.0.5", "192.168.1.1", "169.254.169.254", "100.64.0.1")


def sign_in(cidrs: tuple[str, ...]) -> OidcSignIn:
    nothing = cast(Any, None)
    return OidcSignIn(
        db=nothing,
        catalog=nothing,
        service=nothing,
        keys=nothing,
        idp=IdpFetcher(idp_egress(cidrs)),
    )


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_refused_without_the_operators_allowance(address: str) -> None:
    with pytest.raises(EgressRefused):
        idp_egress().check_address(ipaddress.ip_address(address), named=True)
    idp_egress().check_address(ipaddress.ip_address("93.184.215.14"), named=True)
    idp_egress().check_name("idp.example.com")


def test_the_allowance_admits_only_its_own_cidr() -> None:
    allowed = idp_egress(("127.0.0.1/32",))
    allowed.check_address(ipaddress.ip_address("127.0.0.1"), named=False)
    for address in ("127.0.0.2", "169.254.169.254", "10.0.0.5"):
        with pytest.raises(EgressRefused):
            allowed.check_address(ipaddress.ip_address(address), named=False)


def test_a_loopback_idp_is_not_reached_without_the_allowance() -> None:
    server = JwksServer()
    try:
        with pytest.raises(Unauthenticated) as caught:
            asyncio.run(sign_in(())._request("GET", server.url))
        assert caught.value.code == "oidc_sign_in_failed" and server.hits == 0
        assert "could not be reached" in caught.value.message
        got = asyncio.run(sign_in(("127.0.0.1/32",))._request("GET", server.url))
        assert got == {"keys": []} and server.hits == 1
    finally:
        server.close()


def test_a_name_that_resolves_to_loopback_is_refused() -> None:
    server = JwksServer()
    try:
        url = server.url.replace("127.0.0.1", "localhost")
        with pytest.raises(Unauthenticated):
            asyncio.run(sign_in(())._request("GET", url))
        assert server.hits == 0
    finally:
        server.close()
