"""The upstream client's own transport: bounded pools of `bulkhead.runtime.h1` connections.

`H1Transport` is a `bulkhead.runtime.upstream.Transport`: it gets a
prepared `UpstreamRequest` (whose URL's host the client already checked
against the egress policy) and makes or reuses a connection for it:

* one pool per (scheme, host and port, Unix socket, expected peer, egress policy,
  TLS client context): a connection checked for one policy or peer is never
  reused for a target that expects another, and a rotated SVID's context starts
  new connections while pooled ones age out;
* a TCP connection resolves the host through `GuardedResolver` (the name, then
  every address DNS returned, checked by the policy; an IP literal is not
  resolved, the client checked it) and checks the address it reached with
  `check_peer` before a byte is written;
* ``https`` verifies the server's certificate against the system's CAs and its
  host name; a target with a `peer_id` presents the gateway's SVID and the peer
  must present exactly that SPIFFE ID (`bulkhead.runtime.mtls`), over TCP or a
  Unix socket;
* a pool holds at most `limit` connections (the client's `max_connections`, 64
  for a Unix socket), and all pools together at most `max_connections`
  (`_Budget`: at the bound the idle connection unused the longest is closed
  for a new one); a call waits for one within the connect timeout, which
  also bounds connecting and the TLS handshake; an idle connection expires after
  `KEEPALIVE_S` (or when the upstream closes it);
* a connection goes back to its pool only once its response was read to its
  end and ended cleanly (`Connection.reusable`); any other end (an error, a
  timeout, the caller cancelled or stopped reading) closes it.

Its failures are what the client maps: `TimeoutError` (504), `OSError`
(`EgressRefused` and a refused mutual-TLS peer among them, 502); it does not
import aiohttp (`bulkhead.runtime.guarded`).
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bulkhead.errors import Unavailable
from bulkhead.identity.tls import RotatingIdentity
from bulkhead.runtime.egress import EgressPolicy, literal
from bulkhead.runtime.guarded import GuardedResolver, Resolver, SystemResolver, check_peer
from bulkhead.runtime.h1 import Connection, RequestRefused, Response, encode_request
from bulkhead.runtime.mtls import PeerCheck, exact_peer, verify_peer

if TYPE_CHECKING:
    from collections.abc import Callable

    from bulkhead.runtime.upstream import UpstreamRequest

KEEPALIVE_S = 30.0
"""How long an idle connection is kept for reuse."""
LINGER_S = 1.0
"""How long a finished caller's connection waits for its response's end (`Connection.linger`)."""
UNIX_LIMIT = 64
MAX_POOLS = 1024
"""Pools kept before those without a connection are forgotten."""


@dataclass(frozen=True, slots=True)
class _Base:
    """A base URL taken apart once: what the connection and the request line need."""

    tls: bool
    host: str  # as the socket and TLS need it: no brackets
    port: int
    authority: str  # the Host header
    path: str


def _base(url: str) -> _Base:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestRefused("The upstream request's URL is not valid.")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    return _Base(tls, parts.hostname, port, parts.netloc, parts.path)


PoolKey = tuple[bool, str, str | None, str | None, EgressPolicy | None, ssl.SSLContext | None]


class _Budget:
    """The transport's bound on connections open at once, across all its pools.

    A tenant admin can publish versions under as many paths, or host names its
    wildcard admits, as it likes: a bound per pool alone would be none.  At the
    bound an idle connection of any pool is closed to make room; with none idle
    a caller waits its turn (within its connect timeout).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def reserve(self, pools: Callable[[], list[_Pool]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.open < self.limit:
                self.open += 1
                return
            if _evict_oldest(pools()):
                continue
            waiter = loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self.wake()
                raise
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)

    def release(self) -> None:
        self.open -= 1
        self.wake()

    def wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _evict_oldest(pools: list[_Pool]) -> bool:
    """Close the idle connection unused the longest, of any pool; False if none is idle."""
    oldest: tuple[float, _Pool] | None = None
    for pool in pools:
        if pool.idle and (oldest is None or pool.idle[0].idle_since < oldest[0]):
            oldest = (pool.idle[0].idle_since, pool)
    if oldest is None:
        return False
    pool = oldest[1]
    pool.discard(pool.idle.pop(0))
    return True


class _Pool:
    """Connections to one place under one policy: idle ones (newest last), and a bound."""

    def __init__(self, limit: int, budget: _Budget) -> None:
        self.limit = limit
        self.budget = budget  # every connection opened counts against it until dropped
        self.idle: list[Connection] = []
        self.open = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.sweep: asyncio.TimerHandle | None = None

    def take_idle(self) -> Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.usable(now, KEEPALIVE_S):
                return conn
            self._drop(conn)
        return None

    async def acquire(self) -> Connection | None:
        """An idle connection, else None once one more may be opened (it then counts)."""
        loop = asyncio.get_running_loop()
        while True:
            conn = self.take_idle()
            if conn is not None:
                return conn
            if self.open < self.limit:
                self.open += 1
                return None
            waiter = loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self.wake()  # pass on the turn this caller will not take
                raise
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)

    def wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def put_back(self, conn: Connection) -> None:
        conn.finish()
        self.idle.append(conn)
        if self.sweep is None:
            loop = asyncio.get_running_loop()
            self.sweep = loop.call_later(KEEPALIVE_S, self._sweep)
        self.wake()
        if not self.waiters:
            self.budget.wake()  # a caller of another pool, at the bound, may close it for room

    def _drop(self, conn: Connection) -> None:
        conn.close()
        self.open -= 1
        self.budget.release()
        self.wake()

    def discard(self, conn: Connection) -> None:
        self._drop(conn)

    def settle(self, conn: Connection) -> None:
        """The exchange on `conn` is over: back to the pool if it ended cleanly, else closed."""
        if conn.reusable and self.limit > 0:
            self.put_back(conn)
        else:
            self.discard(conn)

    def _sweep(self) -> None:
        self.sweep = None
        now = time.monotonic()
        keep = [c for c in self.idle if c.usable(now, KEEPALIVE_S)]
        for conn in self.idle:
            if conn not in keep:
                self._drop(conn)
        self.idle = keep
        if keep:
            due = KEEPALIVE_S - (now - min(c.idle_since for c in keep))
            self.sweep = asyncio.get_running_loop().call_later(max(due, 0.1), self._sweep)

    def close(self) -> None:
        if self.sweep is not None:
            self.sweep.cancel()
            self.sweep = None
        for conn in self.idle:
            conn.close()
            self.budget.release()
        self.open -= len(self.idle)
        self.idle = []
        self.limit = 0  # nothing new; connections in use close when their exchange ends


class H1Transport:
    """Sends each request over a pooled connection; a `Transport` for `UpstreamClient`."""

    def __init__(
        self,
        *,
        egress: EgressPolicy,
        max_connections: int = 1024,
        identity: RotatingIdentity | None = None,
        resolver: Callable[[], Resolver] | None = None,
    ) -> None:
        self.egress = egress
        self.max_connections = max_connections
        self.identity = identity
        self.resolver = resolver
        self._pools: dict[PoolKey, _Pool] = {}
        self._budget = _Budget(max_connections)
        self._resolvers: dict[EgressPolicy, GuardedResolver] = {}
        self._checks: dict[str, PeerCheck] = {}
        self._bases: dict[str, _Base] = {}
        self._verified: ssl.SSLContext | None = None  # for https without a peer ID

    def __call__(self, request: UpstreamRequest) -> _Exchange:
        return _Exchange(self, request)

    def base(self, url: str) -> _Base:
        base = self._bases.get(url)
        if base is None:
            base = _base(url)
            if len(self._bases) > 4096:
                self._bases.clear()
            self._bases[url] = base
        return base

    def _context(self, request: UpstreamRequest, base: _Base) -> ssl.SSLContext | None:
        target = request.target
        if target.peer_id is not None:
            if self.identity is None:
                raise Unavailable("The model server needs mutual TLS, which is not configured.")
            return self.identity.context()
        if target.unix_socket is not None or not base.tls:
            return None
        if self._verified is None:
            self._verified = ssl.create_default_context()
        return self._verified

    async def connect(self, request: UpstreamRequest) -> tuple[Connection, _Pool]:
        """A pooled connection for `request` (within the connect timeout), or a new one."""
        target = request.target
        base = self.base(target.base_url)
        context = self._context(request, base)
        tcp = target.unix_socket is None
        policy = (target.egress or self.egress) if tcp else None
        # By origin, not base URL: a connection serves every path of the place it reached.
        peer = target.peer_id
        key: PoolKey = (base.tls, base.authority, target.unix_socket, peer, policy, context)
        pool = self._pools.get(key)
        if pool is None:
            if len(self._pools) >= MAX_POOLS:
                self._prune()
            limit = self.max_connections if tcp else UNIX_LIMIT
            pool = self._pools[key] = _Pool(limit, self._budget)
        conn = pool.take_idle()
        if conn is not None:
            return conn, pool
        async with asyncio.timeout(request.connect_timeout_s):
            conn = await pool.acquire()
            if conn is not None:
                return conn, pool
            try:
                await self._budget.reserve(lambda: list(self._pools.values()))
            except BaseException:
                pool.open -= 1
                pool.wake()
                raise
            try:
                return await self._open(request, base, policy, context), pool
            except BaseException:
                pool.open -= 1
                pool.wake()
                self._budget.release()
                raise

    def _prune(self) -> None:
        """Forget pools with no connection (a rotated TLS context's, a target's gone)."""
        for key, pool in list(self._pools.items()):
            if pool.open == 0 and not pool.waiters:
                pool.close()
                del self._pools[key]

    async def _open(
        self,
        request: UpstreamRequest,
        base: _Base,
        policy: EgressPolicy | None,
        context: ssl.SSLContext | None,
    ) -> Connection:
        loop = asyncio.get_running_loop()
        target = request.target
        if target.unix_socket is not None:
            # An empty server name: no SNI, no host name check; the SPIFFE ID is checked below.
            _, conn = await loop.create_unix_connection(
                lambda: Connection(loop),
                target.unix_socket,
                ssl=context,
                server_hostname="" if context is not None else None,
            )
        else:
            assert policy is not None
            conn = await self._open_tcp(loop, base, policy, context)
        if target.peer_id is not None:
            assert self.identity is not None
            check = self._checks.get(target.peer_id)
            if check is None:
                check = self._checks[target.peer_id] = exact_peer(self.identity, target.peer_id)
            try:
                verify_peer(conn.transport, check)
            except BaseException:
                conn.close()  # `verify_peer` closes on a refusal; any other failure too
                raise
        return conn

    async def _open_tcp(
        self,
        loop: asyncio.AbstractEventLoop,
        base: _Base,
        policy: EgressPolicy,
        context: ssl.SSLContext | None,
    ) -> Connection:
        if literal(base.host) is not None:
            addresses = [base.host]  # checked by the client (`EgressPolicy.check_host`)
        else:
            found = await self._resolver(policy).resolve(base.host, base.port, socket.AF_UNSPEC)
            addresses = [r["host"] for r in found]
        failure: OSError = OSError("no address to connect to")
        for address in addresses:
            try:
                transport, conn = await loop.create_connection(
                    lambda: Connection(loop),
                    address,
                    base.port,
                    ssl=context,
                    server_hostname=base.host if context is not None else None,
                )
            except OSError as exc:
                failure = exc
                continue
            try:
                check_peer(policy, base.host, transport)
            except BaseException:
                transport.close()
                raise
            return conn
        raise failure

    def _resolver(self, policy: EgressPolicy) -> GuardedResolver:
        resolver = self._resolvers.get(policy)
        if resolver is None:
            if len(self._resolvers) >= MAX_POOLS:
                self._resolvers.clear()  # the system's (threaded) resolver holds nothing to close
            inner = self.resolver() if self.resolver is not None else SystemResolver()
            resolver = self._resolvers[policy] = GuardedResolver(policy, inner)
        return resolver

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
        resolvers, self._resolvers = list(self._resolvers.values()), {}
        await asyncio.gather(*(r.close() for r in resolvers), return_exceptions=True)


class _Exchange:
    """One request and its response; leaving it returns the connection or closes it."""

    __slots__ = ("_conn", "_pool", "_request", "_transport")

    def __init__(self, transport: H1Transport, request: UpstreamRequest) -> None:
        self._transport = transport
        self._request = request
        self._conn: Connection | None = None
        self._pool: _Pool | None = None

    async def __aenter__(self) -> Response:
        request = self._request
        base = self._transport.base(request.target.base_url)
        path = base.path + request.url[len(request.target.base_url) :]
        data = encode_request(request.method, path, base.authority, request.headers, request.body)
        conn, self._pool = await self._transport.connect(request)
        self._conn = conn
        try:
            response = conn.start(data, request.read_timeout_s)
            await response.wait_head()
        except BaseException:
            self._end(clean=False)
            raise
        return response

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Only a caller that finished without an error lets the connection read on;
        # an error, a cancellation or a client that went away closes it at once.
        self._end(clean=kind is None)

    def _end(self, *, clean: bool) -> None:
        conn, pool = self._conn, self._pool
        self._conn = None
        if conn is None or pool is None:
            return
        if not (clean and conn.linger(pool.settle, LINGER_S)):
            pool.settle(conn)
