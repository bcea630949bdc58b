"""aiohttp's connectors under an `EgressPolicy` and mutual TLS, for aiohttp's client.

The IdP fetcher (`bulkhead.identity.idp_fetch`) and the upstream client with
``native=False`` use aiohttp's client; this module, imported only by them when
they make a connection, holds the egress policy and the peer check there:
`EgressTcpConnector` resolves through `GuardedResolver` (the name, then every
address DNS returned) and checks the address each new connection actually
reached (`check_peer`), before aiohttp writes a byte of the request onto it.
aiohttp does not ask the resolver about IP literals, so the clients check
those themselves before a request (`EgressPolicy.check_host`).

aiohttp's `UnixConnector` does not do TLS, so `MutualTlsUnixConnector` makes
its connections itself; `MutualTlsTcpConnector` lets aiohttp connect (with the
client context the request passes) and checks the peer's SPIFFE ID
(`bulkhead.runtime.mtls`).  One connector (and so one pool) per policy: a
connection checked for one policy is never reused for a target of another.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.client_exceptions import UnixClientConnectorError
from aiohttp.resolver import DefaultResolver

from bulkhead.errors import Unavailable
from bulkhead.identity.tls import RotatingIdentity
from bulkhead.runtime.egress import EgressPolicy, EgressRefused
from bulkhead.runtime.guarded import GuardedResolver, Resolver, check_peer
from bulkhead.runtime.mtls import PeerCheck, PeerRefused, exact_peer, verify_peer

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace

    from bulkhead.runtime.upstream import Target


class _AiohttpGuardedResolver(GuardedResolver, AbstractResolver):
    """`GuardedResolver` as the `AbstractResolver` aiohttp's connector takes."""


def _verify(transport: asyncio.BaseTransport | None, check: PeerCheck) -> None:
    """`verify_peer`, its refusal as aiohttp's connection error (the aiohttp client's kind)."""
    try:
        verify_peer(transport, check)
    except PeerRefused as exc:
        raise aiohttp.ClientConnectionError(str(exc)) from None


class EgressTcpConnector(aiohttp.TCPConnector):
    """A TCP connector that resolves through the policy and checks each connection's peer."""

    def __init__(
        self,
        *,
        policy: EgressPolicy,
        limit: int,
        resolver: Resolver | None = None,
    ):
        super().__init__(
            limit=limit,
            keepalive_timeout=30,
            ttl_dns_cache=300,
            resolver=_AiohttpGuardedResolver(
                policy, resolver if resolver is not None else DefaultResolver()
            ),
        )
        self.policy = policy

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        proto = await super()._create_connection(req, traces, timeout)
        try:
            check_peer(self.policy, req.url.raw_host or "", proto.transport)
        except EgressRefused:
            if proto.transport is not None:
                proto.transport.close()
            raise
        return proto


class MutualTlsUnixConnector(aiohttp.UnixConnector):
    """TLS over a Unix socket, presenting the gateway's current SVID."""

    def __init__(
        self,
        path: str,
        *,
        context: Callable[[], ssl.SSLContext],
        check: PeerCheck,
        limit: int = 64,
    ):
        super().__init__(path=path, limit=limit)
        self._context, self._check = context, check

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        try:
            async with asyncio.timeout(timeout.sock_connect):
                # An empty server name sends no SNI and checks no host name (the
                # context has check_hostname off); the SPIFFE ID is checked below.
                transport, proto = await self._loop.create_unix_connection(
                    self._factory, self.path, ssl=self._context(), server_hostname=""
                )
        except OSError as exc:
            raise UnixClientConnectorError(self.path, req.connection_key, exc) from exc
        _verify(transport, self._check)
        return proto


class MutualTlsTcpConnector(EgressTcpConnector):
    """TCP with the client context each request passes as ``ssl=``; the peer is checked.

    The egress policy holds first (`EgressTcpConnector`), then the peer's SPIFFE ID.
    """

    def __init__(self, *, check: PeerCheck, limit: int, policy: EgressPolicy):
        super().__init__(policy=policy, limit=limit)
        self._check = check

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        proto = await super()._create_connection(req, traces, timeout)
        _verify(proto.transport, self._check)
        return proto


def connector_for(
    target: Target,
    *,
    identity: RotatingIdentity | None,
    policy: EgressPolicy,
    limit: int,
    resolver: Callable[[], Resolver] | None,
) -> aiohttp.BaseConnector:
    """The upstream client's connector for `target` on its aiohttp path (``native=False``)."""
    if target.peer_id is not None:
        if identity is None:
            raise Unavailable("The model server needs mutual TLS, which is not configured.")
        check = exact_peer(identity, target.peer_id)
        if target.unix_socket is not None:
            return MutualTlsUnixConnector(target.unix_socket, context=identity.context, check=check)
        if not target.base_url.startswith("https://"):
            raise Unavailable("The model server needs mutual TLS, so an https URL.")
        return MutualTlsTcpConnector(check=check, limit=limit, policy=policy)
    if target.unix_socket is None:
        inner = resolver() if resolver is not None else None
        return EgressTcpConnector(policy=policy, limit=limit, resolver=inner)
    return aiohttp.UnixConnector(path=target.unix_socket, limit=64)
