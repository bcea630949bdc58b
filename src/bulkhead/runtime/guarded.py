"""Egress checks of the upstream client's own transport, without aiohttp.

`GuardedResolver` refuses a host name the policy does not name before asking
DNS, and then every address DNS returned, so a name that resolved to a public
address when the version was published and to 127.0.0.1 now (DNS rebinding)
gets no connection.  An IP literal is not resolved: the upstream client checks
it before a request (`EgressPolicy.check_host`).  `check_peer` checks the
address each new connection actually reached, whatever path led there, before
a byte of the request is written.

Here, not in `bulkhead.runtime.connect` (aiohttp's connectors, which use the
same two), so that the serving path (`bulkhead.runtime.h1pool`) never imports
aiohttp: its connector module alone loads the system CA bundle twice at import
(0.03-0.13 s of every start, docs/benchmarks.md, session 16).  `SystemResolver`
is aiohttp's default (threaded) resolver, line for line but for its Windows
case: `loop.getaddrinfo` on the loop's executor.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Protocol

from bulkhead.runtime.egress import EgressPolicy, EgressRefused, literal

if TYPE_CHECKING:
    from aiohttp.abc import ResolveResult  # a TypedDict: the shape aiohttp's resolvers return

log = logging.getLogger("bulkhead.upstream")

_NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
_NAME_FLAGS = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV


class Resolver(Protocol):
    """What resolves a name: aiohttp's `AbstractResolver` has this shape (tests pass fakes)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]: ...

    async def close(self) -> None: ...


class SystemResolver:
    """The system's resolver (`getaddrinfo` on a thread), as aiohttp's `ThreadedResolver`."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, family=family, flags=socket.AI_ADDRCONFIG
        )
        found: list[ResolveResult] = []
        for kind, _, proto, _, address in infos:
            if kind == socket.AF_INET6:
                if len(address) < 3:
                    continue  # IPv6 not supported by this Python or host
                if address[3]:  # a link-local address: its scope goes with it
                    name, service = await loop.getnameinfo(address, _NAME_FLAGS)
                    resolved, at = name, int(service)
                else:
                    resolved, at = str(address[0]), int(address[1])
            else:
                resolved, at = str(address[0]), int(address[1])
            found.append(
                {
                    "hostname": host,
                    "host": resolved,
                    "port": at,
                    "family": kind,
                    "proto": proto,
                    "flags": _NUMERIC_FLAGS,
                }
            )
        return found

    async def close(self) -> None:
        return None


class GuardedResolver:
    """Resolves only names the policy admits, and returns only addresses it admits."""

    def __init__(self, policy: EgressPolicy, inner: Resolver | None = None):
        self.policy = policy
        self.inner: Resolver = inner if inner is not None else SystemResolver()

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
