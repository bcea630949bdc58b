"""Connections that hold to an `EgressPolicy`: checked after DNS and again once connected.

`GuardedResolver` wraps aiohttp's resolver: it refuses a host name the policy
does not name before asking DNS, and then every address DNS returned, so a
name that resolved to a public address when the version was published and
to 127.0.0.1 now (DNS rebinding) gets no connection.  aiohttp does not ask the
resolver about IP literals, so the upstream client checks those itself
before a request (`EgressPolicy.check_host`); and `EgressTcpConnector`
checks the address each new connection actually reached, whatever path led
there, before aiohttp writes a byte of the request onto it.

One connector (and so one pool) per policy: a connection checked for one
policy is never reused for a target of another.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from bulkhead.runtime.egress import EgressPolicy, EgressRefused, literal

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace

log = logging.getLogger("bulkhead.upstream")


class GuardedResolver(AbstractResolver):
    """Resolves only names the policy admits, and returns only addresses it admits."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None):
        self.policy = policy
        self.inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.policy.check_name(host)
        found = await self.inner.resolve(host, port, family)
        # Every address, not just the first: happy eyeballs would try the others.
        self.policy.check_resolved(host, [r["host"] for r in found])
        return found

    async def close(self) -> None:
        await self.inner.close()


class EgressTcpConnector(aiohttp.TCPConnector):
    """A TCP connector that resolves through the policy and checks each connection's peer."""

    def __init__(
        self,
        *,
        policy: EgressPolicy,
        limit: int,
        resolver: AbstractResolver | None = None,
    ):
        super().__init__(
            limit=limit,
            keepalive_timeout=30,
            ttl_dns_cache=300,
            resolver=GuardedResolver(policy, resolver),
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


def check_peer(policy: EgressPolicy, host: str, transport: object) -> None:
    """Refuse a connection whose remote address the policy does not admit."""
    peer = getattr(transport, "get_extra_info", lambda name: None)("peername")
    address = literal(str(peer[0])) if isinstance(peer, tuple) and peer else None
    if address is None:
        raise EgressRefused("the connection has no remote address to check")
    try:
        policy.check_address(address, named=literal(host) is None)
    except EgressRefused as exc:
        # Precise inside: the operator's log says what was refused; the caller gets a 502.
        log.warning("refused an upstream connection: %s", exc.reason)
        raise
